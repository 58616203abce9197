package media_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// BenchmarkEndToEnd forwards camera packets (600-byte payload) from a pion
// publisher through the SFU to one pion subscriber on loopback, at most 64
// in flight. Everything runs in this process, so allocs/op counts the
// publisher's send path, the SFU's read and write paths including pion's
// SRTP and interceptors, and the subscriber's receive path; ns/op is CPU
// and latency together on a shared machine, not a throughput figure.
func BenchmarkEndToEnd(b *testing.B) {
	sfu, err := media.New(media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings()})
	if err != nil {
		b.Fatal(err)
	}
	defer sfu.Close()
	var quiet atomic.Bool
	defer quiet.Store(true)
	pub, err := nodetest.JoinWith(b, sfu, "c_1", "pub", &quiet, nodetest.Publish{Video: true}, nodetest.LoopbackSettings())
	if err != nil {
		b.Fatal(err)
	}
	sub, err := nodetest.JoinWith(b, sfu, "c_1", "sub", &quiet, nodetest.Publish{}, nodetest.LoopbackSettings())
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 600)
	var n uint16
	// Warm up until media flows end to end.
	for deadline := time.Now().Add(20 * time.Second); sub.From("pub/pub") < 50; n++ {
		if time.Now().After(deadline) {
			b.Fatal("no media")
		}
		_ = pub.WriteVideo(n, payload)
		time.Sleep(5 * time.Millisecond)
	}
	base := sub.From("pub/pub")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for int64(i)-(sub.From("pub/pub")-base) > 64 {
			time.Sleep(50 * time.Microsecond)
		}
		if err := pub.WriteVideo(n, payload); err != nil {
			b.Fatal(err)
		}
		n++
	}
	deadline := time.Now().Add(5 * time.Second)
	for sub.From("pub/pub")-base < int64(b.N)*99/100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(sub.From("pub/pub")-base)/float64(b.N)*100, "%delivered")
}
