package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media/nodetest"
)

// nodeSide is where a participant's descriptions go: its session on an
// in-process node, or the signaling socket with to:"sfu".
type nodeSide interface {
	Offer(sdp string) error
	Answer(sdp string) error
}

// layer is one simulcast encoding a publisher sends.
type layer struct {
	rid  string
	kbps int
}

// peerConfig is what a synthetic participant does.
type peerConfig struct {
	index   uint16 // written into every stamp; unique in the run
	publish bool   // sends audio and video; otherwise receives only
	layers  []layer
	// simulcast sends the layers as rid encodings of one track; without
	// it only the last layer is sent, as a plain track.
	simulcast bool
	base      time.Time
	win       *window
}

const (
	frameRate        = 30
	audioInterval    = 20 * time.Millisecond // 50 packets/s
	audioPayloadSize = 100
	keyframeInterval = 2 * time.Second
	maxVideoPayload  = 1100
)

// peer is one pion participant: a peer connection to the SFU that
// publishes synthetic media and reads everything forwarded to it.
type peer struct {
	cfg   peerConfig
	pc    *webrtc.PeerConnection
	stats *recvStats

	audio       *webrtc.TrackLocalStaticRTP
	audioSender *webrtc.RTPSender
	video       []*webrtc.TrackLocalStaticRTP
	videoSender *webrtc.RTPSender
	keyWanted   []atomic.Bool // per video layer: a PLI asked for a keyframe

	node   nodeSide
	sdpMu  sync.Mutex // descriptions are applied one at a time, in order
	joinAt atomic.Int64

	sent     atomic.Int64 // packets sent inside the window
	speakers atomic.Int64
	failures atomic.Int64 // negotiation errors and node-side session ends
	lastErr  atomic.Value // error

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and tracks against pion callbacks
	closed bool
	tracks []*webrtc.TrackRemote
	wg     sync.WaitGroup
}

// clientSettings keep participants on IPv4 UDP without mDNS, and include
// loopback candidates so that a node listening only there is reachable.
func clientSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.LoggerFactory = quietLogger{}
	return se
}

type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}

func newPeer(ctx context.Context, cfg peerConfig) (*peer, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	// RFC 6464 levels let the node pick the active speaker.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("audio level extension: %w", err)
	}
	api, err := nodetest.ClientAPI(m, clientSettings())
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	p := &peer{cfg: cfg, pc: pc, stats: newRecvStats()}
	p.ctx, p.cancel = context.WithCancel(ctx)
	if err := p.addMedia(); err != nil {
		pc.Close()
		p.cancel()
		return nil, err
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.mu.Lock()
		p.tracks = append(p.tracks, remote)
		p.mu.Unlock()
		p.spawn(func() { p.read(remote) })
	})
	// A browser's encoder starts with a keyframe once the transport is up;
	// frames written before that are dropped.
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			for i := range p.keyWanted {
				p.keyWanted[i].Store(true)
			}
		}
	})
	return p, nil
}

// addMedia adds the published tracks, or receive-only transceivers for a
// participant that only watches, so that its first offer has media to
// negotiate.
func (p *peer) addMedia() error {
	if !p.cfg.publish {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return fmt.Errorf("receive-only %s: %w", kind, err)
			}
		}
		return nil
	}
	var err error
	p.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera")
	if err != nil {
		return fmt.Errorf("audio track: %w", err)
	}
	if p.audioSender, err = p.pc.AddTrack(p.audio); err != nil {
		return fmt.Errorf("audio track: %w", err)
	}
	layers := p.cfg.layers
	if !p.cfg.simulcast {
		layers = layers[len(layers)-1:]
	}
	for i, l := range layers {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if p.cfg.simulcast {
			opts = append(opts, webrtc.WithRTPStreamID(l.rid))
		}
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera", opts...)
		if err != nil {
			return fmt.Errorf("video layer %s: %w", l.rid, err)
		}
		if i == 0 {
			p.videoSender, err = p.pc.AddTrack(t)
		} else {
			err = p.videoSender.AddEncoding(t)
		}
		if err != nil {
			return fmt.Errorf("video layer %s: %w", l.rid, err)
		}
		p.video = append(p.video, t)
	}
	p.keyWanted = make([]atomic.Bool, len(p.video))
	return nil
}

// spawn runs f on a goroutine the peer owns, unless the peer is closing.
func (p *peer) spawn(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.wg.Go(f)
}

func (p *peer) since() time.Duration { return time.Since(p.cfg.base) }

func (p *peer) fail(err error) {
	if p.ctx.Err() != nil {
		return // shutting down: late renegotiations may fail
	}
	p.failures.Add(1)
	p.lastErr.Store(err)
}

// start sends the participant's first offer, with all its candidates,
// and starts publishing. Packets written before the transport is up are
// dropped by pion, which is what a browser's encoder does too.
func (p *peer) start(node nodeSide) error {
	p.node = node
	p.sdpMu.Lock()
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(p.pc)
		if err = p.pc.SetLocalDescription(offer); err == nil {
			<-gathered
		}
	}
	p.sdpMu.Unlock()
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	// The node may answer from inside Offer (the in-process node does),
	// so no lock is held here.
	if err := node.Offer(p.pc.LocalDescription().SDP); err != nil {
		return fmt.Errorf("offer to the node: %w", err)
	}
	if p.cfg.publish {
		p.spawn(p.sendAudio)
		p.spawn(p.sendVideo)
		p.spawn(func() { p.readRTCP(-1, "") })
		for i, t := range p.video {
			rid := ""
			if p.cfg.simulcast {
				rid = t.RID()
			}
			p.spawn(func() { p.readRTCP(i, rid) })
		}
	}
	return nil
}

// Answer applies the node's answer to our offer.
func (p *peer) Answer(sdp string) {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		p.fail(fmt.Errorf("node answer: %w", err))
	}
}

// Offer answers a renegotiation of the node off the caller's goroutine,
// as a browser would: the in-process node calls it with its locks held.
func (p *peer) Offer(sdp string) {
	p.spawn(func() {
		p.sdpMu.Lock()
		defer p.sdpMu.Unlock()
		err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
		var answer webrtc.SessionDescription
		if err == nil {
			answer, err = p.pc.CreateAnswer(nil)
		}
		if err == nil {
			gathered := webrtc.GatheringCompletePromise(p.pc)
			if err = p.pc.SetLocalDescription(answer); err == nil {
				<-gathered
			}
		}
		if err == nil {
			err = p.node.Answer(p.pc.LocalDescription().SDP)
		}
		if err != nil {
			p.fail(fmt.Errorf("node offer: %w", err))
		}
	})
}

// Speaker counts the node's active-speaker changes.
func (p *peer) Speaker(string) { p.speakers.Add(1) }

// Closed records that the node ended the session.
func (p *peer) Closed(err error) { p.fail(fmt.Errorf("node closed the session: %w", err)) }

// close stops the participant and waits for every goroutine it owns.
func (p *peer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	_ = p.pc.Close() // ends the track and RTCP readers, mostly
	// A track whose SRTP stream the renegotiations replaced can stay
	// blocked in Read after Close (pion/srtp v3.1.3); a deadline in the
	// past releases it. (Senders get none: before negotiation pion's
	// sender has no stream, and its deadline setter dereferences it.)
	p.mu.Lock()
	for _, t := range p.tracks {
		_ = t.SetReadDeadline(time.Now())
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// read accounts every packet of one forwarded track.
func (p *peer) read(remote *webrtc.TrackRemote) {
	audio := remote.Kind() == webrtc.RTPCodecTypeAudio
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	// Like a browser's decoder, ask for a keyframe until one arrives: the
	// publisher's last one may have passed before this subscription.
	var lastPLI time.Time
	decoding := audio
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		now := p.since()
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		var s stamp
		key := false
		if audio {
			s, err = decodeAudio(pkt.Payload)
		} else {
			s, key, err = decodeVP8(pkt.Payload)
		}
		if err != nil {
			continue // padding probes carry no stamp
		}
		decoding = decoding || key
		if !decoding && time.Since(lastPLI) > 500*time.Millisecond {
			lastPLI = time.Now()
			_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(remote.SSRC())}})
		}
		p.stats.record(p.cfg.win, s, key, n, now)
	}
}

// readRTCP drains the RTCP of the audio sender (layer -1) or of one video
// layer, so that interceptors run, and turns picture loss indications into
// keyframe requests.
func (p *peer) readRTCP(layer int, rid string) {
	for {
		var pkts []rtcp.Packet
		var err error
		switch {
		case layer < 0:
			pkts, _, err = p.audioSender.ReadRTCP()
		case rid != "":
			pkts, _, err = p.videoSender.ReadSimulcastRTCP(rid)
		default:
			pkts, _, err = p.videoSender.ReadRTCP()
		}
		if err != nil {
			return
		}
		if layer < 0 {
			continue
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.keyWanted[layer].Store(true)
			}
		}
	}
}

// extensionIDs returns the negotiated ids of the header extensions a
// sender writes, 0 for those not in use.
func extensionIDs(s *webrtc.RTPSender) map[string]uint8 {
	ids := map[string]uint8{}
	for _, e := range s.GetParameters().HeaderExtensions {
		ids[e.URI] = uint8(e.ID)
	}
	return ids
}

// mid returns the media id of the transceiver that holds sender.
func (p *peer) mid(s *webrtc.RTPSender) string {
	for _, t := range p.pc.GetTransceivers() {
		if t.Sender() == s {
			return t.Mid()
		}
	}
	return ""
}

func (p *peer) sendAudio() {
	ids := extensionIDs(p.audioSender)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2}}
	if id := ids[sdp.AudioLevelURI]; id != 0 {
		// Voice, at a level that differs between publishers so the
		// node has a loudest one to name.
		level := byte(20 + p.cfg.index%40)
		_ = pkt.Header.SetExtension(id, []byte{0x80 | level})
	}
	buf := make([]byte, audioPayloadSize)
	tick := time.NewTicker(audioInterval)
	defer tick.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		now := int64(p.since())
		pkt.SequenceNumber = uint16(seq)
		pkt.Timestamp = seq * 960
		pkt.Payload = encodeAudio(buf, stamp{Publisher: p.cfg.index, Stream: streamAudio, Seq: seq, SentNanos: now})
		if err := p.audio.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
		if p.cfg.win.contains(now) {
			p.sent.Add(1)
		}
	}
}
