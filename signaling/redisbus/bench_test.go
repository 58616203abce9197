package redisbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEnvelope seals and opens one message between replicas, beside
// the HMAC-SHA256 that authenticating without sealing would cost.
func BenchmarkEnvelope(b *testing.B) {
	key, err := newEnvelopeKey(testKey)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{200, 4096} {
		msg := make([]byte, size)
		b.Run(fmt.Sprintf("seal+open/%dB", size), func(b *testing.B) {
			s, _ := newSealer(key, "signal-1-abcdefgh")
			o := newOpener(key)
			now := time.Now()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := o.open("openconsult:live:bus:x", now, s.seal("openconsult:live:bus:x", now, msg)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("hmac-reference/%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				for range 2 { // once to send, once to check
					m := hmac.New(sha256.New, testKey)
					m.Write(msg)
					m.Sum(nil)
				}
			}
		})
	}
}
