package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

// gateStore keeps rows in memory; its first append waits for the test to
// open the gate, so that others queue meanwhile.
type gateStore struct {
	entered chan struct{}
	gate    chan struct{}

	mu    sync.Mutex
	rows  []Row
	calls int
}

func (g *gateStore) AuditAppend(ctx context.Context, build func(last Row) ([]Row, error)) error {
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var last Row
	if len(g.rows) > 0 {
		last = g.rows[len(g.rows)-1]
	}
	rows, err := build(last)
	if err != nil {
		return err
	}
	g.rows = append(g.rows, rows...)
	return ctx.Err()
}

func (g *gateStore) AuditRows(ctx context.Context, from uint64, fn func(Row) error) error {
	g.mu.Lock()
	rows := append([]Row(nil), g.rows...)
	g.mu.Unlock()
	for _, r := range rows {
		if r.Seq >= from {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gateStore) AuditCheckpoints(context.Context, uint64, int) ([]StoredCheckpoint, error) {
	return nil, nil
}
func (g *gateStore) AddAuditCheckpoint(context.Context, StoredCheckpoint) error { return nil }
func (g *gateStore) LatestAuditCheckpoint(context.Context) (StoredCheckpoint, bool, error) {
	return StoredCheckpoint{}, false, nil
}

func (l *Log) queued() int {
	l.batchMu.Lock()
	defer l.batchMu.Unlock()
	return len(l.queue)
}

// Appends that arrive while a batch is stored are stored together in the
// next transaction, each returned as stored, in one chain; one whose
// caller gave up while it waited is left out, and a caller's short
// deadline does not fail the others.
func TestAppendsWaitingTogetherShareOneTransaction(t *testing.T) {
	g := &gateStore{entered: make(chan struct{}), gate: make(chan struct{})}
	l := New(g, nil, nil)
	entry := func(who string) Entry {
		return Entry{Type: TypeSessionRequest, Outcome: Success, Requester: who, Room: "c_1"}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := l.Append(context.Background(), entry("first")); err != nil {
			t.Error(err)
		}
	})
	<-g.entered
	const waiting = 10
	got := make([]Entry, waiting)
	for i := range waiting {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if i == 0 {
				// The shortest deadline of the batch, still in the future.
				ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
			}
			defer cancel()
			e, err := l.Append(ctx, entry(fmt.Sprint("g_", i)))
			if err != nil {
				t.Error(err)
			}
			got[i] = e
		})
	}
	gone, giveUp := context.WithCancel(context.Background())
	var goneErr error
	wg.Go(func() { _, goneErr = l.Append(gone, entry("gone")) })
	eventually.True(t, 10*time.Second, "the appends to queue", func() bool { return l.queued() == waiting+1 })
	giveUp()
	close(g.gate)
	wg.Wait()

	if !errors.Is(goneErr, context.Canceled) {
		t.Fatalf("the append whose caller gave up returned %v", goneErr)
	}
	if g.calls != 2 || len(g.rows) != waiting+1 {
		t.Fatalf("%d transactions stored %d rows, want 2 and %d", g.calls, len(g.rows), waiting+1)
	}
	prev := ""
	for i, r := range g.rows {
		e, err := ParseEntry(r.Canonical)
		if err != nil || e.Seq != uint64(i+1) || e.Prev != prev || e.Requester == "gone" {
			t.Fatalf("row %d: %+v, %v", i, e, err)
		}
		prev = fmt.Sprintf("%x", LeafHash(r.Canonical))
	}
	for i, e := range got {
		r := g.rows[e.Seq-1]
		if c, _ := e.Canonical(); string(c) != string(r.Canonical) || e.Requester != fmt.Sprint("g_", i) {
			t.Fatalf("append %d returned %+v, stored %s", i, e, r.Canonical)
		}
	}
}
