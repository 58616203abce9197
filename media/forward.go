package media

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// Queue lengths per forwarded track and subscriber. A keyframe of a 720p
// layer is some 30 to 60 packets, so video gets room for a few of them;
// audio, at 50 packets a second, a second's worth.
const (
	videoQueue = 256
	audioQueue = 64
)

// downTrack is one publication as one subscriber receives it. It is the
// webrtc.TrackLocal added to the subscriber's connection, so the SFU, not
// pion, decides what is written: one simulcast layer at a time, with the
// SSRC, sequence numbers and timestamps rewritten into one continuous
// stream across layer switches and dropped runs.
//
// The publisher's reader goroutines only offer packets to its queue, never
// blocking; the writer of the subscriber's connection (connwriter.go), or
// a recording track's own, writes them to the subscriber's transport. A
// subscriber whose transport stalls fills its own queues and loses its own
// packets, and nobody else's.
type downTrack struct {
	sfu  *SFU
	pub  *publication
	sub  *Session   // nil for a recording's track
	rec  *recording // the recording that takes it, or nil
	kind int

	sender *webrtc.RTPSender // set once AddTrack returned, before the writer starts
	// desc is the track as the node's own transport negotiates it; set
	// when it is made, for a subscriber on that transport only.
	desc sdpneg.Track
	// rtcp reads the subscriber's RTCP about the track, on the
	// connection's hub, while pion has the track bound.
	rtcp atomic.Pointer[streamReader]
	// w is the subscriber connection's writer, which writes the queue; nil
	// for a track that runs a writer of its own (run), as a recording's do.
	w     *connWriter
	bound atomic.Pointer[binding]
	queue chan queued
	done  chan struct{}
	once  sync.Once

	// Layer choice: target is set by the subscriber's allocator, current
	// only by the writer. Readers use both to skip other layers early.
	target  atomic.Int32
	current atomic.Int32

	// After an overflow, video is dropped up to the next keyframe: the
	// decoder cannot use anything in between.
	dropping atomic.Bool
	// keyRetry is when the subscriber last asked for the keyframe that
	// ends dropping (the SFU's clock).
	keyRetry atomic.Int64
	// paused video is not sent at all: the subscriber shows it nowhere.
	paused atomic.Bool

	// wmu is held while a packet is written, by the connection's writer
	// or by the goroutine that received it (writeDirect), which own the
	// fields below in turn.
	wmu sync.Mutex
	rw  rewriter     // writer-owned
	vp8 *vp8Rewriter // writer-owned; VP8 simulcast only
	hdr rtp.Header   // writer-owned, reused for every packet

	sent *sentLog // what a subscriber may ask for again; nil for audio and recordings
}

// queued is a packet on a subscriber's queue. resume marks the keyframe
// that ends a run the queue dropped: the gap before it is the SFU's, not
// the network's, and the writer closes it.
type queued struct {
	p      *packet
	resume bool
}

type binding struct {
	ssrc uint32
	pt   uint8
	ws   webrtc.TrackLocalWriter
}

func newDownTrack(pub *publication, sub *Session) *downTrack {
	n := videoQueue
	if pub.kind == kindAudio {
		n = audioQueue
	}
	d := &downTrack{sfu: pub.sfu, pub: pub, sub: sub, kind: pub.kind, queue: make(chan queued, n), done: make(chan struct{})}
	d.current.Store(-1)
	d.target.Store(int32(pub.defaultLayer()))
	if !pub.simulcast {
		d.current.Store(0)
		d.target.Store(0)
	}
	d.rw.layer = d.current.Load()
	if pub.simulcast && strings.EqualFold(pub.codec.MimeType, webrtc.MimeTypeVP8) {
		d.vp8 = &vp8Rewriter{}
	}
	d.rw.needKeyframe = d.kind == kindVideo && pub.keyframe != nil
	if sub != nil && d.kind == kindVideo {
		d.sent = &sentLog{}
	}
	d.rw.lastKeyRequest = math.MinInt64 / 2
	return d
}

// ID, RID, StreamID and Kind implement webrtc.TrackLocal. The stream id is
// "{publisher member id}/{publisher stream id}": browsers map tracks to
// members by that prefix.
func (d *downTrack) ID() string       { return d.pub.trackID }
func (d *downTrack) RID() string      { return "" }
func (d *downTrack) StreamID() string { return d.pub.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType {
	if d.kind == kindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// Bind implements webrtc.TrackLocal: negotiation with the subscriber is
// done, so the track can be written, and the subscriber needs a keyframe
// to start decoding.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(d.pub.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	d.bound.Store(&binding{ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), ws: ctx.WriteStream()})
	if d.sub != nil {
		r := d.rtcpReaderFor(uint32(ctx.SSRC()), ctx.RTCPReader())
		d.rtcp.Store(r)
		d.sub.streams.attach(r)
	}
	if d.kind == kindVideo {
		d.pub.requestFirstKeyframe(int(d.target.Load()))
	}
	return codec, nil
}

// Unbind implements webrtc.TrackLocal.
func (d *downTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	d.bound.Store(nil)
	if r := d.rtcp.Swap(nil); r != nil {
		d.sub.streams.detach(r)
	}
	return nil
}

// matchCodec picks the subscriber's payload type for the publisher's
// codec: the same format parameters if offered, else the same codec.
func matchCodec(c webrtc.RTPCodecParameters, offered []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var loose *webrtc.RTPCodecParameters
	for i, o := range offered {
		if !strings.EqualFold(o.MimeType, c.MimeType) {
			continue
		}
		if o.SDPFmtpLine == c.SDPFmtpLine {
			return o, true
		}
		if loose == nil {
			loose = &offered[i]
		}
	}
	if loose != nil {
		return *loose, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// offer queues p for this subscriber, from a publisher's reader goroutine.
// It never blocks and allocates nothing.
func (d *downTrack) offer(p *packet) {
	if d.paused.Load() {
		return
	}
	if d.pub.simulcast {
		if l := int32(p.layer); l != d.current.Load() && l != d.target.Load() {
			return
		}
	}
	resume := false
	if d.dropping.Load() {
		if !p.keyframe {
			d.sfu.metrics.dropped[d.kind][dropAwaitKeyframe].Inc()
			d.retryKeyframe(p.arrival)
			return
		}
		resume = true
	}
	if d.w != nil && d.w.own != nil && d.writeDirect(p, resume) {
		if resume {
			d.dropping.Store(false)
		}
		return
	}
	p.refs.Add(1)
	select {
	case d.queue <- queued{p, resume}:
		if resume {
			d.dropping.Store(false)
		}
		if d.w != nil {
			d.w.signal()
		}
		return
	default:
	}
	p.refs.Add(-1) // the reader still holds its own reference
	d.sfu.metrics.dropped[d.kind][dropQueueFull].Inc()
	if d.kind == kindVideo && d.pub.keyframe != nil && !d.dropping.Swap(true) {
		d.keyRetry.Store(p.arrival)
		d.pub.requestKeyframe(int(p.layer))
	}
	// Audio, and video of a codec whose keyframes the SFU cannot see, lose
	// just this packet: the receiver conceals the gap.
}

// writeDirect writes p at once, on the goroutine that received it, when
// the subscriber is on the node's own transport and reached over UDP,
// whose writes never wait on the subscriber, and nothing of the track is
// queued before p: no hand-off to the connection's writer. The node's
// own transport delivers a publication's packets one at a time, so no
// other packet of the track is offered meanwhile. It reports false, and
// the packet goes to the queue, otherwise.
func (d *downTrack) writeDirect(p *packet, resume bool) bool {
	if len(d.queue) > 0 {
		return false
	}
	if _, ok := d.w.own(); !ok || !d.wmu.TryLock() {
		return false
	}
	defer d.wmu.Unlock()
	select {
	case <-d.done:
		return true // stopped: dropped, as the queue's writer would
	default:
	}
	if len(d.queue) > 0 {
		return false // the writer took the lock for a packet queued before
	}
	d.write(p, resume)
	return true
}

// setPaused stops or resumes a video for a subscriber that hides or shows
// it. It resumes at a keyframe, as after an overflow, so the writer closes
// the gap and the subscriber never asks for what was not sent.
func (d *downTrack) setPaused(paused bool) {
	if d.kind != kindVideo || d.paused.Swap(paused) == paused || paused {
		return
	}
	if d.pub.keyframe != nil {
		d.keyRetry.Store(d.sfu.now())
		d.dropping.Store(true)
	}
	d.pub.requestKeyframe(int(d.target.Load()))
}

// retryKeyframe asks again, every keyframeRetry, for the keyframe that
// ends dropping: the first request may have been lost, or throttled just
// after the keyframe another subscriber's request brought had gone by,
// and a browser sends no keyframe unasked. Publisher readers of several
// layers may call it at once.
func (d *downTrack) retryKeyframe(now int64) {
	last := d.keyRetry.Load()
	if now-last < keyframeRetry || !d.keyRetry.CompareAndSwap(last, now) {
		return
	}
	d.pub.requestKeyframe(int(d.target.Load()))
}

// run is the writer goroutine of a track without a connection writer; it
// ends when stop is called.
func (d *downTrack) run() {
	for {
		select {
		case q := <-d.queue:
			d.write(q.p, q.resume)
			d.sfu.pool.release(q.p)
		case <-d.done:
			d.release()
			return
		}
	}
}

// release lets go of the packets queued and sent, once the track's writer
// is done with it.
func (d *downTrack) release() {
	for {
		select {
		case q := <-d.queue:
			d.sfu.pool.release(q.p)
		default:
			if d.sent != nil {
				d.sent.clear(d.sfu.pool)
			}
			return
		}
	}
}

// stop ends the writing of the track. Packets offered afterwards stay in
// the queue and are collected with it.
func (d *downTrack) stop() {
	d.once.Do(func() {
		close(d.done)
		if d.w != nil {
			d.w.signal()
		}
	})
}

// write rewrites p for this subscriber and writes it to its transport.
func (d *downTrack) write(p *packet, resume bool) {
	b := d.bound.Load()
	if b == nil {
		return // not negotiated yet: the subscriber cannot receive it
	}
	rw := &d.rw
	resynced := false
	target := d.target.Load()
	if (target != rw.layer || rw.needKeyframe) && p.arrival-rw.lastKeyRequest >= keyframeRetry {
		// Waiting for a keyframe to switch layers, or to start: ask again
		// now and then, as the first request may have been lost.
		rw.lastKeyRequest = p.arrival
		d.pub.requestKeyframe(int(target))
	}
	if int32(p.layer) != rw.layer {
		// Another layer: switch to it at its keyframe if it is the target,
		// keep forwarding the old layer until then.
		if int32(p.layer) != target || !p.keyframe {
			d.sfu.metrics.dropped[d.kind][dropAwaitKeyframe].Inc()
			return
		}
		if rw.layer >= 0 {
			d.sfu.metrics.layerSwitches.Inc()
		}
		rw.layer = int32(p.layer)
		rw.resync(p, d.pub.clockRate)
		resynced = true
		d.current.Store(rw.layer)
	} else if resume && rw.started {
		// The first packet after a run this subscriber's queue dropped:
		// close the gap, so the subscriber does not ask for packets that
		// were never sent to it.
		rw.resync(p, d.pub.clockRate)
		resynced = true
	}
	seq, ts, ok := rw.next(p, d.pub.clockRate)
	if !ok {
		d.sfu.metrics.dropped[d.kind][dropStale].Inc()
		return
	}
	h := &d.hdr
	h.Version = 2
	h.Padding = false
	h.PaddingSize = 0
	h.Marker = p.marker
	h.PayloadType = b.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.SSRC = b.ssrc
	h.CSRC = nil
	// The publisher's extension ids were negotiated with the publisher,
	// not with this subscriber: none are forwarded, and the interceptors
	// add the subscriber's own (transport-cc).
	h.Extension = false
	h.ExtensionProfile = 0
	h.Extensions = h.Extensions[:0]
	payload := p.payload()
	if d.vp8 != nil {
		payload = d.vp8.rewrite(payload, resynced)
	}
	n, err := b.ws.WriteRTP(h, payload)
	if err != nil {
		d.sfu.metrics.dropped[d.kind][dropWriteError].Inc()
		return
	}
	if n == 0 {
		// pion drops what is written before DTLS has set up SRTP, without
		// an error: the subscriber will need a keyframe sent later.
		d.sfu.metrics.dropped[d.kind][dropNotReady].Inc()
		if d.kind == kindVideo && d.pub.keyframe != nil {
			rw.needKeyframe = true
			if d.pub.simulcast {
				// Start again at the next keyframe, as a layer switch
				// does; the subscriber has seen nothing of this one.
				rw.layer = -1
				d.current.Store(-1)
			}
		}
		return
	}
	if p.keyframe {
		rw.needKeyframe = false
	}
	if d.sent != nil {
		e := sentEntry{seq: seq, ts: ts}
		if d.vp8 != nil {
			e.vp8, e.picOff, e.tl0Off = true, d.vp8.picOffset, d.vp8.tl0Offset
		}
		d.sent.add(d.sfu.pool, p, e)
	}
	d.sfu.metrics.forwardedPackets[d.kind].Inc()
	d.sfu.metrics.forwardedBytes[d.kind].Add(float64(12 + len(payload)))
}

// keyframeRetry is how often a subscriber waiting for a keyframe (to start
// or to switch layers) asks again, in nanoseconds; requestKeyframe still
// throttles per publisher layer.
const keyframeRetry = int64(500 * time.Millisecond)

// rewriter maps the sequence numbers and timestamps of whatever layer is
// forwarded onto one continuous outgoing stream.
type rewriter struct {
	started        bool
	layer          int32 // forwarded layer, -1 before the first keyframe
	seqOffset      uint16
	tsOffset       uint32
	lastOutSeq     uint16 // newest sent
	lastOutTS      uint32
	lastArrival    int64
	lastInSeq      uint16 // newest received on the forwarded layer
	baseInSeq      uint16 // where the current mapping starts; older is stale
	lastKeyRequest int64
	needKeyframe   bool // video sent so far cannot be decoded without one
}

// resync makes p follow the last packet sent directly: the next sequence
// number, and a timestamp advanced by the time that passed.
func (r *rewriter) resync(p *packet, clockRate uint32) {
	if r.started {
		r.seqOffset = p.seq - (r.lastOutSeq + 1)
		ticks := uint32((p.arrival - r.lastArrival) * int64(clockRate) / 1e9)
		if ticks == 0 {
			ticks = 1
		}
		r.tsOffset = p.ts - (r.lastOutTS + ticks)
	}
	r.baseInSeq = p.seq
	r.lastInSeq = p.seq - 1
}

// next returns p's outgoing sequence number and timestamp, or false when p
// comes from before the current mapping and cannot be placed.
func (r *rewriter) next(p *packet, _ uint32) (uint16, uint32, bool) {
	if !r.started {
		r.started = true
		r.baseInSeq, r.lastInSeq = p.seq, p.seq-1
		r.lastOutSeq = p.seq - 1
	}
	if int16(p.seq-r.baseInSeq) < 0 {
		return 0, 0, false
	}
	if int16(p.seq-r.lastInSeq) > 0 {
		r.lastInSeq = p.seq
	}
	seq, ts := p.seq-r.seqOffset, p.ts-r.tsOffset
	if int16(seq-r.lastOutSeq) > 0 {
		r.lastOutSeq, r.lastOutTS, r.lastArrival = seq, ts, p.arrival
	}
	return seq, ts, true
}
