package wire

import (
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// connectedPair is a connection with SRTP keys set as a handshake would
// leave them, and a context that encrypts what it receives.
func connectedPair(b *testing.B) (*Conn, *srtp.Context) {
	b.Helper()
	key, salt := make([]byte, 16), make([]byte, 12)
	ctx := func() *srtp.Context {
		// Without replay protection, so that a benchmark can deliver the
		// same packets again.
		c, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPNoReplayProtection())
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	c := newTestConn(b, &sent{}, nil)
	c.cfg.Send = func([]byte, netip.AddrPort) error { return nil }
	c.rx.ctx, c.tx.ctx = ctx(), ctx()
	c.ice.selected = netip.MustParseAddrPort("192.0.2.7:50000")
	c.ready.Store(true)
	return c, ctx()
}

// BenchmarkConnDeliverSRTP: one received video packet, decrypted in
// place and handed to the handler.
func BenchmarkConnDeliverSRTP(b *testing.B) {
	c, remote := connectedPair(b)
	defer c.Close()
	payload := make([]byte, 1100)
	wire := make([][]byte, 1024)
	for i := range wire {
		p, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), SSRC: 7}, Payload: payload}).Marshal()
		enc, err := remote.EncryptRTP(nil, p, nil)
		if err != nil {
			b.Fatal(err)
		}
		wire[i] = enc
	}
	buf := make([]byte, 2048)
	from := netip.MustParseAddrPort("192.0.2.7:50000")
	b.SetBytes(int64(len(wire[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := copy(buf, wire[i%len(wire)])
		if err := c.Deliver(buf[:n], from); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnWriteRTP: one video packet marshalled, encrypted and
// handed to the socket.
func BenchmarkConnWriteRTP(b *testing.B) {
	c, _ := connectedPair(b)
	defer c.Close()
	payload := make([]byte, 1100)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 9, Extension: true, ExtensionProfile: rtp.ExtensionProfileOneByte}
	if err := h.SetExtension(3, []byte{1, 2}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.SequenceNumber = uint16(i)
		if err := c.WriteRTP(&h, payload); err != nil {
			b.Fatal(err)
		}
	}
}
