package media

import (
	"fmt"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/twcc"
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
//   - NACK responder: a per-stream send cache that retransmits what a
//     subscriber reports lost, so loss on one subscriber's path is repaired
//     on that path only; and the NACK generator, which asks publishers for
//     what the SFU itself lost on the uplink.
//   - RTCP sender and receiver reports: subscribers need sender reports to
//     synchronise audio with video; publishers use receiver reports.
//   - Transport-wide congestion control: the header extension on what the
//     SFU sends, and pion's GCC estimator reading subscribers' feedback,
//     which the simulcast allocator reads; and TWCC feedback toward
//     publishers, which browsers use to size their uplink.
//   - The MID/RID/repaired-RID header extensions simulcast needs, and the
//     RFC 6464 audio level extension the active speaker is computed from.
//
// Interceptors run in the reverse order of registration on the way out.
// The NACK responder is registered before (so runs after) the congestion
// controller: GCC's pacer only knows the media SSRCs and would refuse the
// retransmissions the responder sends on the RTX SSRC.
func newAPI(settings webrtc.SettingEngine, estimators *sync.Map, m *metrics) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	reg := &interceptor.Registry{}

	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("nack generator: %w", err)
	}
	resp, err := nack.NewResponderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("nack responder: %w", err)
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	reg.Add(retransmitCounter{m})
	reg.Add(resp)
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		// The SFU's own queues pace; GCC's leaky bucket would add a second
		// queue and a goroutine per subscriber.
		return gcc.NewSendSideBWE(gcc.SendSideBWEInitialBitrate(initialEstimate), gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
	})
	if err != nil {
		return nil, fmt.Errorf("congestion control: %w", err)
	}
	// Called inside NewPeerConnection; Join picks the estimator up by the
	// connection's id right after.
	ccf.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) { estimators.Store(id, e) })
	reg.Add(ccf)

	reg.Add(gen)

	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	// Feedback toward publishers, and the transport-cc extension for both
	// directions.
	if err := webrtc.ConfigureTWCCSender(me, reg); err != nil {
		return nil, fmt.Errorf("twcc feedback: %w", err)
	}
	ext, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc extension: %w", err)
	}
	reg.Add(ext)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("simulcast extensions: %w", err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("audio level extension: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(settings)), nil
}

// retransmitCounter sits just below the NACK responder and counts the
// packets it resends: a packet older than the newest one already sent on
// its stream, or one on the stream's RTX SSRC, can only be a
// retransmission from the cache.
type retransmitCounter struct{ m *metrics }

func (r retransmitCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return r, nil }

func (retransmitCounter) BindRTCPReader(rd interceptor.RTCPReader) interceptor.RTCPReader { return rd }
func (retransmitCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter  { return w }
func (retransmitCounter) UnbindLocalStream(*interceptor.StreamInfo)                       {}
func (retransmitCounter) BindRemoteStream(_ *interceptor.StreamInfo, rd interceptor.RTPReader) interceptor.RTPReader {
	return rd
}
func (retransmitCounter) UnbindRemoteStream(*interceptor.StreamInfo) {}
func (retransmitCounter) Close() error                               { return nil }

func (r retransmitCounter) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var mu sync.Mutex // retransmissions come from the responder's goroutine
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
