package media

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// TestHeaderCacheParsesOnceWithoutAllocating: the interceptors above the
// cache find the received packet's header already parsed, in a map and a
// header the stream reuses, so reading allocates nothing.
func TestHeaderCacheParsesOnceWithoutAllocating(t *testing.T) {
	f, err := newHeaderCaches()
	if err != nil {
		t.Fatal(err)
	}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 7, SSRC: 9}, Payload: make([]byte, 100)}
	if err := pkt.SetExtension(3, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hc, _ := f.NewInterceptor("")
	src := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, raw), a, nil
	})
	r := hc.BindRemoteStream(&interceptor.StreamInfo{}, src)
	buf := make([]byte, 1500)
	var seq uint16
	allocs := testing.AllocsPerRun(100, func() {
		_, a, err := r.Read(buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := a.GetRTPHeader(buf) // what each interceptor above does
		if err != nil {
			t.Fatal(err)
		}
		seq = h.SequenceNumber
	})
	if seq != 7 {
		t.Fatalf("sequence number %d, want 7", seq)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per packet read, want 0", allocs)
	}
}
