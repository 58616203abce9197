package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/openconsult/openconsult/internal/procstat"
)

// heldMemory is what the node's process holds once the collector has run
// and the runtime has given back to the system every page it does not
// use: the steady-state cost of the sessions, without the collector's
// headroom (with GOGC=100 the heap grows up to twice what is live before
// a collection) or the pages of a past peak, such as the joins' DTLS
// handshakes, which the runtime returns only gradually. The resident
// size sampled at an arbitrary moment lies anywhere between this figure
// and about twice its heap, by where the collector's cycle stands.
type heldMemory struct {
	RSSBytes   int64  `json:"rss"`
	HeapBytes  uint64 `json:"heap"`   // heap spans in use
	StackBytes uint64 `json:"stacks"` // goroutine stacks
}

// readHeldMemory collects, returns free pages to the system and reads the
// calling process's figures; it runs in the node's process.
func readHeldMemory() (heldMemory, error) {
	debug.FreeOSMemory() // collects first
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	u, err := procstat.Read(os.Getpid())
	if err != nil {
		return heldMemory{}, fmt.Errorf("held memory: %w", err)
	}
	return heldMemory{RSSBytes: u.RSSBytes, HeapBytes: m.HeapInuse, StackBytes: m.StackInuse}, nil
}

// heldGrowth sets r's held-memory figures per subscriber from the
// process's figures before the first join (a) and at the window's end (b).
func heldGrowth(r *Result, a, b heldMemory) {
	if r.Subscribers == 0 {
		return
	}
	per := func(x, y int64) float64 { return float64(y-x) / 1024 / float64(r.Subscribers) }
	r.HeldKiBPerSubscriber = per(a.RSSBytes, b.RSSBytes)
	r.HeapKiBPerSubscriber = per(int64(a.HeapBytes), int64(b.HeapBytes))
	r.StackKiBPerSubscriber = per(int64(a.StackBytes), int64(b.StackBytes))
}
