package media

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// initialEstimate is where a subscriber's bandwidth estimate starts before
// its first transport-wide feedback: enough for a 720p layer, so a
// subscriber starts on the layer its view asks for.
const initialEstimate = 2_500_000

// newAPI builds the pion API every peer connection of the SFU comes from,
// with each interceptor registered on purpose (pion's defaults are not
// applied implicitly):
//
//   - NACK feedback: subscribers' NACKs are answered by the SFU itself from
//     the packets the publication already holds (nackcache.go), so loss
//     on one subscriber's path is repaired on that path only, without a
//     copy of every packet per subscriber; and the node asks publishers
//     for what it lost on the uplink (rtcpsched.go).
//   - RTCP sender and receiver reports: subscribers need sender reports to
//     synchronise audio with video; publishers use receiver reports. The
//     node's own (rtcpsched.go), written by one goroutine of the node, not
//     by pion's ticker goroutines per connection.
//   - Transport-wide congestion control: toward subscribers, the SFU's own
//     lean estimator (bwe.go), which numbers what the SFU sends and reads
//     each feedback report once, for the simulcast allocator; toward
//     publishers, the node's TWCC feedback (twccsend.go), which browsers
//     use to size their uplink.
//   - The MID/RID/repaired-RID header extensions simulcast needs, and the
//     RFC 6464 audio level extension the active speaker is computed from.
//
// Retransmissions go out on the subscriber's RTX stream where it has one
// (the retransmitter, at the bottom of the chain), else on the media SSRC
// with their first sequence number.
func newAPI(settings webrtc.SettingEngine, estimators, rtx *sync.Map, m *metrics, sched *rtcpScheduler) (*connAPI, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	// First, so innermost on every received stream: one parsed header
	// per packet for all the interceptors above (rtpattrs.go).
	hc, err := newHeaderCaches()
	if err != nil {
		return nil, fmt.Errorf("header cache: %w", err)
	}
	reg.Add(hc)

	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	reg.Add(retransmitters{m: m, byConn: rtx})
	// Called inside NewPeerConnection; Join picks the estimator up by the
	// connection's id right after.
	reg.Add(leanBWEs{byConn: estimators})
	// Reports, NACKs and feedback toward publishers (rtcpsched.go).
	reg.Add(sched)
	// The transport-cc extension and feedback, both directions.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, fmt.Errorf("transport-cc extension: %w", err)
		}
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("simulcast extensions: %w", err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("audio level extension: %w", err)
	}
	return &connAPI{me: me, reg: reg, settings: settings}, nil
}

// connAPI makes each peer connection from an API of its own, which
// differs from the others only in its buffer factory: the connection's
// streams (streams.go), which learn of every packet the
// connection receives. The media engine and the interceptors are shared;
// pion copies the media engine per connection anyway.
type connAPI struct {
	me       *webrtc.MediaEngine
	reg      *interceptor.Registry
	settings webrtc.SettingEngine
}

func (a *connAPI) newPeerConnection(cfg webrtc.Configuration, hub *connStreams) (*webrtc.PeerConnection, error) {
	settings := a.settings
	settings.BufferFactory = hub.newBuffer
	api := webrtc.NewAPI(webrtc.WithMediaEngine(a.me), webrtc.WithInterceptorRegistry(a.reg), webrtc.WithSettingEngine(settings))
	return api.NewPeerConnection(cfg)
}

// nodeCodecs are the codecs the node negotiates: Opus; VP8, which every
// browser sends first and the only one the node forwards as simulcast; and
// H.264 constrained baseline and baseline, packetization mode 1, which
// Safari on iOS may prefer. All of them are recorded (recording/track.go).
// Each video codec comes with its RTX format. Pion's default list (VP9,
// AV1, H.265, more H.264 variants, G.722, G.711) is not used: every codec
// offered is repeated in every media section of the node's offers, in
// the browser's answers and in its later offers (an ICE restart), which
// made a room of a dozen publishers exceed the signaling limits (see
// docs/benchmarks/sfu.md, "Session description size").
func nodeCodecs() []webrtc.RTPCodecParameters {
	// pion's default feedback; newAPI adds transport-cc.
	videoFeedback := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	h264 := func(pt uint8, profile string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(pt), RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: videoFeedback,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile}}
	}
	rtx := func(pt, apt uint8) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(pt), RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", apt)}}
	}
	return []webrtc.RTPCodecParameters{
		{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}},
		{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}},
		rtx(97, 96),
		h264(102, "42001f"), rtx(103, 102),
		h264(106, "42e01f"), rtx(107, 106),
	}
}

// registerCodecs registers nodeCodecs with me, with pion's payload types.
func registerCodecs(me *webrtc.MediaEngine) error {
	for _, c := range nodeCodecs() {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(c, kind); err != nil {
			return fmt.Errorf("codec %s: %w", c.MimeType, err)
		}
	}
	return nil
}

// retransmitters makes one retransmitter per peer connection, handed to
// Join by the connection's id, like the estimators.
type retransmitters struct {
	m      *metrics
	byConn *sync.Map
}

func (f retransmitters) NewInterceptor(id string) (interceptor.Interceptor, error) {
	r := &retransmitter{m: f.m, streams: map[uint32]*rtxStream{}}
	f.byConn.Store(id, r)
	return r, nil
}

// retransmitter sits at the bottom of a connection's chain. It counts the
// packets resent: a packet older than the newest one already sent on its
// stream, or one on the stream's RTX SSRC, can only be a retransmission.
// And it sends retransmissions on the RTX stream of a track whose
// subscriber negotiated one (RFC 4588), straight to SRTP: the congestion
// controller's pacer above it only knows the media SSRCs.
type retransmitter struct {
	interceptor.NoOp
	m       *metrics
	mu      sync.Mutex
	streams map[uint32]*rtxStream // by media SSRC
}

type rtxStream struct {
	mu   sync.Mutex
	w    interceptor.RTPWriter
	ssrc uint32
	pt   uint8
	seq  uint16
	hdr  rtp.Header
	buf  []byte
}

func (r *retransmitter) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if info.SSRCRetransmission != 0 && info.PayloadTypeRetransmission != 0 {
		r.mu.Lock()
		r.streams[info.SSRC] = &rtxStream{w: w, ssrc: info.SSRCRetransmission, pt: info.PayloadTypeRetransmission}
		r.mu.Unlock()
	}
	var mu sync.Mutex // retransmissions come from the track's RTCP reader
	var newest uint16
	started := false
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		mu.Lock()
		switch {
		case h.SSRC != info.SSRC:
			r.m.nackRetransmits.Inc()
		case !started:
			started, newest = true, h.SequenceNumber
		case int16(h.SequenceNumber-newest) > 0:
			newest = h.SequenceNumber
		default:
			r.m.nackRetransmits.Inc()
		}
		mu.Unlock()
		return w.Write(h, payload, a)
	})
}

func (r *retransmitter) UnbindLocalStream(info *interceptor.StreamInfo) {
	r.mu.Lock()
	delete(r.streams, info.SSRC)
	r.mu.Unlock()
}

// resend sends h and payload again on the RTX stream of h's SSRC: the
// original sequence number first in the payload, then the payload. It
// reports false, sending nothing, when that track has no RTX stream.
func (r *retransmitter) resend(h *rtp.Header, payload []byte) bool {
	r.mu.Lock()
	s := r.streams[h.SSRC]
	r.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = binary.BigEndian.AppendUint16(s.buf[:0], h.SequenceNumber)
	s.buf = append(s.buf, payload...)
	s.hdr = rtp.Header{Version: 2, Marker: h.Marker, PayloadType: s.pt, SequenceNumber: s.seq, Timestamp: h.Timestamp, SSRC: s.ssrc}
	s.seq++
	r.m.nackRetransmits.Inc()
	_, _ = s.w.Write(&s.hdr, s.buf, nil)
	return true
}
