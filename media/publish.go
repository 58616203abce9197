package media

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// maxLayers is the number of simulcast layers a publication can have.
const maxLayers = 3

// keyframeInterval is the shortest time between two keyframe requests the
// SFU sends for one layer of a publisher, whoever asks: a keyframe costs
// several times an ordinary frame, and ten subscribers joining or losing
// packets at once need one keyframe, not ten. A request within it is not
// lost: unless a keyframe comes first, it goes out when the interval
// ends (see layer.pendingPLI). A quarter of a second keeps a subscriber
// that joins just after another's keyframe went by from waiting for
// half a second more before its first frame.
const keyframeInterval = int64(250 * time.Millisecond)

// publication is one track a participant publishes, with its simulcast
// layers when it has them, and the subscribers it is forwarded to.
type publication struct {
	sfu       *SFU
	key       string // owner member id + "/" + track id
	owner     *Session
	trackID   string
	streamID  string // "{owner}/{publisher stream id}"
	kind      int
	codec     webrtc.RTPCodecParameters
	clockRate uint32
	keyframe  keyframeDetector
	simulcast bool
	readers   int // layers being read, guarded by sfu.mu

	layers [maxLayers]atomic.Pointer[layer]
	subs   atomic.Pointer[[]*downTrack] // copy on write under sfu.mu

	audioLevelID uint8
	level        levelMeter

	// sendPLI writes a keyframe request to the publisher.
	sendPLI func(ssrc uint32) error
}

// layer is one simulcast encoding (or the only one).
type layer struct {
	rid     string
	ssrc    uint32
	lastPLI atomic.Int64
	// lastKey is the arrival of the newest keyframe; at or after lastPLI,
	// no request is outstanding.
	lastKey atomic.Int64
	// pendingPLI is a request that came within keyframeInterval of the
	// last one sent: the layer's reader sends it once the interval has
	// passed, unless a keyframe arrives first, which serves it.
	pendingPLI atomic.Bool
	rate       atomic.Int64 // bits per second over the last second
	last       atomic.Int64 // arrival of the newest packet

	// reader-owned
	winStart, winBytes int64
}

// account adds p to the layer's bit rate, which the allocator compares
// with subscribers' bandwidth.
func (l *layer) account(p *packet) {
	l.last.Store(p.arrival)
	l.winBytes += int64(p.n)
	if d := p.arrival - l.winStart; d >= int64(time.Second) {
		l.rate.Store(l.winBytes * 8 * int64(time.Second) / d)
		l.winStart, l.winBytes = p.arrival, 0
	}
}

// active reports whether the layer is being received: browsers pause the
// upper layers when their uplink is short.
func (l *layer) active(now int64) bool {
	return l != nil && now-l.last.Load() < int64(time.Second)
}

// trackDesc is what the node needs of a received track to publish it,
// whichever transport received it.
type trackDesc struct {
	id, streamID string // the publisher's msid
	rid          string // the first layer's; "" without simulcast
	kind         int
	codec        webrtc.RTPCodecParameters
	audioLevelID uint8 // the RFC 6464 extension's id; 0 for none
	// sendPLI writes a keyframe request for a layer to the publisher.
	sendPLI func(ssrc uint32) error
}

// pionTrack describes a track pion received on s's connection.
func pionTrack(s *Session, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) trackDesc {
	d := trackDesc{id: remote.ID(), streamID: remote.StreamID(), rid: remote.RID(), kind: kindVideo, codec: remote.Codec(),
		sendPLI: func(ssrc uint32) error {
			return s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}}
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		d.kind = kindAudio
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				d.audioLevelID = uint8(e.ID)
			}
		}
	}
	return d
}

func newPublication(s *Session, d trackDesc) *publication {
	pub := &publication{
		sfu:          s.sfu,
		key:          s.member + "/" + d.id,
		owner:        s,
		trackID:      d.id,
		streamID:     s.member + "/" + d.streamID,
		kind:         d.kind,
		codec:        d.codec,
		clockRate:    d.codec.ClockRate,
		keyframe:     keyframeFunc(d.codec.MimeType),
		simulcast:    d.rid != "",
		sendPLI:      d.sendPLI,
		audioLevelID: d.audioLevelID,
	}
	if pub.clockRate == 0 {
		pub.clockRate = 90000
	}
	pub.subs.Store(&[]*downTrack{})
	return pub
}

// layerIndex ranks a simulcast rid: the names browsers and libraries use
// for low, middle and full resolution; 0, 1 and 2 otherwise by arrival.
func (pub *publication) layerIndex(rid string) int {
	switch strings.ToLower(rid) {
	case "":
		return 0
	case "f", "full", "hi", "high", "2":
		return 2
	case "h", "half", "m", "mid", "medium", "1":
		return 1
	case "q", "quarter", "l", "lo", "low", "0":
		return 0
	}
	for i := range pub.layers {
		if pub.layers[i].Load() == nil {
			return i
		}
	}
	return maxLayers - 1
}

// defaultLayer is what a new subscriber starts on: the best layer
// received, until its view and bandwidth say otherwise.
func (pub *publication) defaultLayer() int {
	for i := maxLayers - 1; i >= 0; i-- {
		if pub.layers[i].Load() != nil {
			return i
		}
	}
	return maxLayers - 1
}

// requestKeyframe asks the publisher for a keyframe on layer i, at most
// once per keyframeInterval per layer: for a subscriber that lost packets
// or asks itself, which may ask again and again.
func (pub *publication) requestKeyframe(i int) { pub.askKeyframe(i, false) }

// requestFirstKeyframe asks for the keyframe a subscriber needs to show
// anything at all: its track was just bound, its transport just came up,
// or its first simulcast layer was chosen. The
// request goes out at once unless one is outstanding (sent, and no
// keyframe arrived since), whose keyframe will serve this subscriber too;
// the interval alone would have it wait for up to keyframeInterval when
// another subscriber's keyframe went by just before, as when members join
// one after another. There is one such request per subscriber and
// negotiation, and at most one outstanding per layer, so a burst of joins
// costs at most one keyframe per round trip to the publisher. (Showing a
// hidden video again, which a participant can repeat at will, stays
// throttled.)
func (pub *publication) requestFirstKeyframe(i int) { pub.askKeyframe(i, true) }

func (pub *publication) askKeyframe(i int, first bool) {
	if i < 0 || i >= maxLayers {
		return
	}
	l := pub.layers[i].Load()
	if l == nil {
		return
	}
	now := pub.sfu.now()
	last := l.lastPLI.Load()
	due := now-last >= keyframeInterval || first && l.lastKey.Load() >= last
	if !due || !l.lastPLI.CompareAndSwap(last, now) {
		l.pendingPLI.Store(true)
		pub.sfu.metrics.plisThrottled.Inc()
		return
	}
	l.pendingPLI.Store(false)
	if err := pub.sendPLI(l.ssrc); err == nil {
		pub.sfu.metrics.plisForwarded.Inc()
	}
}

// readOne reads one packet of layer idx of the publication through pion's
// reader for the track, and forwards it; an error ends the layer. Calls
// for one layer are serialised (Session.read).
func (pub *publication) readOne(remote *webrtc.TrackRemote, idx int, l *layer) error {
	pool := pub.sfu.pool
	p := pool.get()
	defer pool.release(p)
	n, _, err := remote.Read(p.buf[:])
	if err != nil {
		return err
	}
	p.setLen(n)
	pub.forward(p, idx, l)
	return nil
}

// forward takes p, a packet of layer idx received whole, and offers it
// to every subscriber; the caller releases p. Calls for one layer are
// serialised.
func (pub *publication) forward(p *packet, idx int, l *layer) {
	if !p.parse() {
		return
	}
	p.layer = int8(idx)
	p.arrival = pub.sfu.now()
	p.keyframe = pub.keyframe != nil && pub.keyframe(p.payload())
	if p.keyframe {
		l.lastKey.Store(p.arrival)
	}
	l.account(p)
	pub.servePending(l, idx, p)
	if pub.audioLevelID != 0 {
		pub.level.add(p.extension(pub.audioLevelID))
	}
	for _, d := range *pub.subs.Load() {
		d.offer(p)
	}
}

// servePending sends the keyframe request that waited for the end of
// keyframeInterval, or drops it when p is the keyframe it asked for.
func (pub *publication) servePending(l *layer, idx int, p *packet) {
	if !l.pendingPLI.Load() {
		return
	}
	if p.keyframe {
		l.pendingPLI.Store(false)
		return
	}
	if p.arrival-l.lastPLI.Load() >= keyframeInterval && l.pendingPLI.Swap(false) {
		pub.requestKeyframe(idx)
	}
}

// webrtcKind is the publication's kind as pion names it.
func (pub *publication) webrtcKind() webrtc.RTPCodecType {
	if pub.kind == kindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}
