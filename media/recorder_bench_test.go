package media

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// countTrack is a test double of a recorder's track that counts bytes.
type countTrack struct{ bytes int }

func (c *countTrack) WriteRTP(p *rtp.Packet) { c.bytes += len(p.Payload) }
func (c *countTrack) End()                   {}

// BenchmarkRecordPacket is what the recorder adds per video packet (600-
// byte payload) on top of forwarding it to the members: the offer to the
// recording's queue and its writer's rewrite, header and call into the
// sink, measured like BenchmarkForwardPacket.
func BenchmarkRecordPacket(b *testing.B) {
	h := newHarness(b, kindVideo)
	sink := &countTrack{}
	rec := h.subscribe(b, &recWriter{ts: sink}, false)
	subs := []*downTrack{rec}
	l := h.pub.layers[0].Load()
	tmpl := h.packet()
	raw := append([]byte(nil), tmpl.buf[:tmpl.n]...)
	h.sfu.pool.release(tmpl)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := h.sfu.pool.get()
		p.n = copy(p.buf[:], raw)
		binary.BigEndian.PutUint16(p.buf[2:], uint16(i))
		if !p.parse() {
			b.Fatal("parse")
		}
		p.arrival = h.sfu.now()
		p.keyframe = h.pub.keyframe(p.payload())
		l.account(p)
		h.forwardAndWrite(p, subs)
	}
	if sink.bytes == 0 {
		b.Fatal("nothing recorded")
	}
}
