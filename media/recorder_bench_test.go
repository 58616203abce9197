package media

import (
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
	h.benchForward(b, subs)
	if sink.bytes == 0 {
		b.Fatal("nothing recorded")
	}
}
