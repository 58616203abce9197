package nodetest

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ClientAPI returns the pion API of a test participant: the media engine
// m with pion's default interceptors (receiver reports, NACKs for what
// the network lost, the retransmissions they ask for, transport-wide
// feedback), as a browser has them, and ICE confined by settings.
//
// pion's NACK responder resends a packet on the RTX stream with the
// original's header extensions, so a simulcast participant that writes
// the RID of its layer into every packet would name its retransmissions
// with the layer's RID; pion on the node then takes the retransmission
// stream for the layer itself and stops reading the layer (pion/webrtc
// v4.2). Browsers name a retransmission's layer with the repaired RID
// (RFC 8852 section 3.2); so do these participants.
func ClientAPI(m *webrtc.MediaEngine, settings webrtc.SettingEngine) (*webrtc.API, error) {
	reg := &interceptor.Registry{}
	reg.Add(repairedRID{}) // first, so it sees what the responder resends
	var opts []webrtc.InterceptorOption
	if settings.LoggerFactory != nil {
		opts = append(opts, webrtc.WithInterceptorLoggerFactory(settings.LoggerFactory))
	}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, reg, opts...); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(settings)), nil
}

// repairedRID moves the RID of every packet sent on a stream's RTX SSRC
// to the repaired RID extension.
type repairedRID struct{ interceptor.NoOp }

func (repairedRID) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &repairedRID{}, nil
}

func (*repairedRID) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var rid, rrid uint8
	for _, e := range info.RTPHeaderExtensions {
		switch e.URI {
		case sdp.SDESRTPStreamIDURI:
			rid = uint8(e.ID)
		case sdp.SDESRepairRTPStreamIDURI:
			rrid = uint8(e.ID)
		}
	}
	if info.SSRCRetransmission == 0 || rid == 0 || rrid == 0 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if v := h.GetExtension(rid); h.SSRC == info.SSRCRetransmission && v != nil {
			c := h.Clone() // h is the responder's cached copy
			_ = c.DelExtension(rid)
			if err := c.SetExtension(rrid, v); err != nil {
				return 0, fmt.Errorf("repaired rid: %w", err)
			}
			h = &c
		}
		return w.Write(h, payload, a)
	})
}
