package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

func outboxCount(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

func TestResetRequestAnswersBeforeAnyWork(t *testing.T) {
	f := newFixture(t)
	f.createUser(t, "dr.reset", "reset clinician passphrase")
	q := NewResetQueue(f.svc, 8)
	audited := len(f.audit.types())
	for _, name := range []string{"dr.reset", "nobody.here"} {
		if err := q.RequestReset(context.Background(), name, testClient); err != nil {
			t.Fatalf("RequestReset(%q) = %v", name, err)
		}
	}
	// Nothing ran yet: an existing account cost the request no more than an
	// unknown one.
	if n := outboxCount(t, f.outbox); n != 0 || len(f.audit.types()) != audited {
		t.Fatalf("the request did work before answering: %d mails, %d new audit records", n, len(f.audit.types())-audited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	eventually.True(t, 10*time.Second, "reset mail sent by the queue", func() bool { return outboxCount(t, f.outbox) == 1 })
	cancel()
	<-done
	if link := f.lastLink(t, "/reset/"); link == "" {
		t.Fatal("no reset link")
	}
}

func TestResetQueueFinishesQueuedRequestsAtShutdown(t *testing.T) {
	f := newFixture(t)
	f.createUser(t, "dr.late", "late clinician passphrase")
	q := NewResetQueue(f.svc, 8)
	if err := q.RequestReset(context.Background(), "dr.late", testClient); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shutdown began before the loop saw the request
	q.Run(ctx)
	if n := outboxCount(t, f.outbox); n != 1 {
		t.Fatalf("%d mails after shutdown, want the queued one", n)
	}
}

func TestResetQueueDropsWhenFullWithoutBlocking(t *testing.T) {
	f := newFixture(t)
	q := NewResetQueue(f.svc, 2)
	for range 5 {
		if err := q.RequestReset(context.Background(), "nobody.here", testClient); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.jobs) != 2 {
		t.Fatalf("%d queued, want the queue's size", len(q.jobs))
	}
}
