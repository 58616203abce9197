package media

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// BenchmarkRTCPInterceptors is the per-packet cost of what notes received
// and sent packets for RTCP: pion's NACK generator, report and TWCC
// feedback interceptors against the node's (rtcpsched.go), each above the
// header cache, reading a publisher's video packet and writing a
// subscriber's.
func BenchmarkRTCPInterceptors(b *testing.B) {
	chains := []struct {
		name string
		add  func(*interceptor.Registry)
	}{
		{"pion", func(reg *interceptor.Registry) {
			gen, _ := nack.NewGeneratorInterceptor()
			recv, _ := report.NewReceiverInterceptor()
			send, _ := report.NewSenderInterceptor()
			tw, _ := twcc.NewSenderInterceptor()
			reg.Add(gen)
			reg.Add(recv)
			reg.Add(send)
			reg.Add(tw)
		}},
		{"node", func(reg *interceptor.Registry) { reg.Add(newRTCPScheduler(time.Now())) }},
	}
	info := &interceptor.StreamInfo{SSRC: 1000, ClockRate: 90000, MimeType: "video/VP8",
		RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}},
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: twccTestID}}}
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: info.SSRC}, Payload: make([]byte, 1000)}
	if err := p.SetExtension(twccTestID, []byte{0, 0}); err != nil {
		b.Fatal(err)
	}
	raw, err := p.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range chains {
		reg := &interceptor.Registry{}
		hc, err := newHeaderCaches()
		if err != nil {
			b.Fatal(err)
		}
		reg.Add(hc)
		c.add(reg)
		chain, err := reg.Build("")
		if err != nil {
			b.Fatal(err)
		}
		chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil }))
		var seq uint16
		r := chain.BindRemoteStream(info, interceptor.RTPReaderFunc(func(buf []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			seq++
			binary.BigEndian.PutUint16(raw[2:], seq)
			binary.BigEndian.PutUint16(raw[17:], seq) // the extension's value, after its one-byte header
			return copy(buf, raw), a, nil
		}))
		w := chain.BindLocalStream(info, interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
			return 0, nil
		}))
		buf := make([]byte, 1500)
		b.Run("read/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.Read(buf, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("write/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := p.Header
			for b.Loop() {
				h.SequenceNumber++
				if _, err := w.Write(&h, p.Payload, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		if err := chain.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
