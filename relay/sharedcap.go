package relay

import (
	"sync/atomic"
	"time"
)

// The server-wide bandwidth cap is one bucket per direction shared by every
// allocation, so that a relay on a link shared with the institution's other
// traffic never takes more than its share, however many allocations are
// open. The per-allocation cap keeps one allocation from taking all of it.

// direction is an index into sharedBucket's directions.
type direction int

const (
	toPeer direction = iota
	fromPeer
)

// sharedBucket is a token bucket in bytes per direction, with a burst of
// one second's worth, safe for use by every loop and goroutine that
// relays. It is kept as the generic cell rate algorithm does: each
// direction is one atomic time, the moment its bucket would be full again,
// so relaying takes no lock and loses no fraction of a token however
// small the gaps between datagrams.
type sharedBucket struct {
	now       func() time.Time
	nsPerByte float64
	window    int64 // ns: how far ahead of now the full time may run
	full      [2]atomic.Int64
}

func newSharedBucket(bitsPerSecond int64, now func() time.Time) *sharedBucket {
	rate := float64(bitsPerSecond) / 8
	b := &sharedBucket{now: now, nsPerByte: float64(time.Second) / rate}
	b.window = max(int64(time.Second), int64(minBurst*b.nsPerByte))
	return b
}

// allow takes n bytes' worth of tokens in direction d, or reports that the
// datagram is over the cap.
func (b *sharedBucket) allow(d direction, n int) bool {
	cost := int64(float64(n) * b.nsPerByte)
	now := b.now().UnixNano()
	f := &b.full[d]
	for {
		at := f.Load()
		next := max(at, now) + cost
		if next-now > b.window {
			return false
		}
		if f.CompareAndSwap(at, next) {
			return true
		}
	}
}

// reserve takes n bytes' worth of tokens in direction d however far ahead
// that runs, and returns how long until the bucket is back within its
// burst: a stream's wait. Datagrams meanwhile find it over the cap.
func (b *sharedBucket) reserve(d direction, n int) time.Duration {
	cost := int64(float64(n) * b.nsPerByte)
	now := b.now().UnixNano()
	f := &b.full[d]
	for {
		at := f.Load()
		next := max(at, now) + cost
		if f.CompareAndSwap(at, next) {
			return time.Duration(max(0, next-now-b.window))
		}
	}
}
