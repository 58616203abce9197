package media

import (
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

// TestConnWriterWritesEveryTrack: one writer writes every track of a
// connection, and a track stopped on it lets go of its queue and leaves
// the writer while the others go on.
func TestConnWriterWritesEveryTrack(t *testing.T) {
	h := newHarness(t, kindVideo)
	cw := newConnWriter(h.sfu)
	a, b := &recorder{}, &recorder{}
	da, db := h.subscribe(t, a, false), h.subscribe(t, b, false)
	for _, d := range []*downTrack{da, db} {
		d.w = cw
		cw.add(d)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { cw.run(done) })
	defer func() { close(done); wg.Wait() }()

	const first = 90
	for range first {
		h.forward(h.packet())
	}
	eventually.True(t, 10*time.Second, "both tracks written", func() bool { return a.count() == first && b.count() == first })
	db.stop()
	for range first {
		h.forward(h.packet()) // db still offered: its publication was not told yet
	}
	eventually.True(t, 10*time.Second, "the other track written on", func() bool { return a.count() == 2*first })
	eventually.True(t, 10*time.Second, "the stopped track released", func() bool {
		cw.mu.Lock()
		defer cw.mu.Unlock()
		return len(cw.downs) == 1 && cw.downs[0] == da
	})
	// A pass under way when the track stopped may finish its burst.
	if n := b.count(); n > first+writeBurst {
		t.Errorf("the stopped track got %d packets, want the %d before it stopped", n, first)
	}
	checkSeq(t, "a", a, false)
}
