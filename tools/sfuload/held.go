package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// heldMemory is what the node's process holds once the collector has run
// and the runtime has given back to the system every page it does not
// use, counting its anonymous memory only (RssAnon): the steady-state
// cost of the sessions, without the pages of the program's own code that
// the first sessions brought in (a few MB of pion's, once), the collector's
// headroom (with GOGC=100 the heap grows up to twice what is live before
// a collection) or the pages of a past peak, such as the joins' DTLS
// handshakes, which the runtime returns only gradually. The resident
// size sampled at an arbitrary moment lies anywhere between this figure
// and about twice its heap, by where the collector's cycle stands.
type heldMemory struct {
	RSSBytes   int64  `json:"rss_anon"`
	HeapBytes  uint64 `json:"heap"`   // heap spans in use
	StackBytes uint64 `json:"stacks"` // goroutine stacks
}

// readHeldMemory collects, returns free pages to the system and reads the
// calling process's figures; it runs in the node's process.
func readHeldMemory() (heldMemory, error) {
	debug.FreeOSMemory() // collects first
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return heldMemory{}, fmt.Errorf("held memory: %w", err)
	}
	anon, err := parseRssAnon(string(status))
	if err != nil {
		return heldMemory{}, fmt.Errorf("held memory: %w", err)
	}
	return heldMemory{RSSBytes: anon, HeapBytes: m.HeapInuse, StackBytes: m.StackInuse}, nil
}

// parseRssAnon returns the RssAnon line of /proc/PID/status in bytes.
func parseRssAnon(status string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "RssAnon:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("no RssAnon in /proc/self/status")
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
