package consult

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// auditTrail keeps the retention audit entries.
type auditTrail struct {
	mu      sync.Mutex
	entries []string // event consult document
}

func (a *auditTrail) RecordSession(_ context.Context, event, consultID, _, _ string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, event+" "+consultID+" "+fields["document"])
	return nil
}

// keyFirst deletes objects from the real backend and records, at each
// delete, whether the document naming the object still had its key.
type keyFirst struct {
	backend objstore.Backend
	db      *store.DB
	docs    map[string][2]string // object -> consult, document
	keyLeft []string
}

func (k *keyFirst) Delete(ctx context.Context, name string) error {
	if d, ok := k.docs[name]; ok {
		row, err := k.db.DocumentByID(ctx, d[0], d[1])
		if err != nil || row.KeyEnc != nil || row.ExpiredAt.IsZero() {
			k.keyLeft = append(k.keyLeft, d[1])
		}
	}
	return k.backend.Delete(ctx, name)
}

type retentionFixture struct {
	s       *Service
	db      *store.DB
	now     *time.Time
	backend objstore.Backend
	audit   *auditTrail
	deleter *keyFirst
	sweeper *Sweeper
}

func newRetentionFixture(t *testing.T) retentionFixture {
	s, db, now := newService(t)
	backend := s.Objects.(*objstore.Store).Backend()
	f := retentionFixture{s: s, db: db, now: now, backend: backend, audit: &auditTrail{},
		deleter: &keyFirst{backend: backend, db: db, docs: map[string][2]string{}}}
	f.sweeper = &Sweeper{Store: db, Objects: f.deleter, Audit: f.audit, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return *now }, Retention: 30 * 24 * time.Hour, Every: time.Hour}
	return f
}

// share stores a document in consultID at the fixture's current time.
func (f retentionFixture) share(t *testing.T, consultID string) store.Document {
	t.Helper()
	ctx := context.Background()
	m, err := f.s.ShareDocument(ctx, consultID, "g_pat", "Pat", "letter.pdf", bytes.NewReader(pdfOf(1000)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.db.DocumentByID(ctx, consultID, m.File.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.deleter.docs[d.Object] = [2]string{consultID, d.ID}
	return d
}

func (f retentionFixture) objectExists(t *testing.T, name string) bool {
	t.Helper()
	r, err := f.backend.Get(context.Background(), name, 0, -1)
	if errors.Is(err, objstore.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return true
}

func TestSweepDestroysTheKeyThenTheObjectAndAudits(t *testing.T) {
	ctx := context.Background()
	f := newRetentionFixture(t)
	open, _ := f.s.Create(ctx, "u_doc", "", false)
	held, _ := f.s.Create(ctx, "u_doc", "", false)
	if _, err := f.db.SetLegalHold(ctx, held.ID, true); err != nil {
		t.Fatal(err)
	}
	old, oldHeld := f.share(t, open.ID), f.share(t, held.ID)
	*f.now = f.now.Add(20 * 24 * time.Hour)
	recent := f.share(t, open.ID)
	*f.now = f.now.Add(20 * 24 * time.Hour)

	n, err := f.sweeper.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if len(f.deleter.keyLeft) != 0 {
		t.Fatalf("objects deleted while their key was still stored: %v", f.deleter.keyLeft)
	}
	if f.objectExists(t, old.Object) {
		t.Fatal("expired object still stored")
	}
	row, err := f.db.DocumentByID(ctx, open.ID, old.ID)
	if err != nil || row.DeletedAt.IsZero() || row.KeyEnc != nil || row.Object != "" {
		t.Fatalf("expired row = %+v, %v; want a tombstone", row, err)
	}
	if _, err := f.s.OpenDocument(ctx, open.ID, old.ID); !errors.Is(err, ErrDocumentExpired) {
		t.Fatalf("OpenDocument of an expired document: %v", err)
	}
	if h, _ := f.s.ChatHistory(ctx, open.ID); len(h) != 2 || h[0].File == nil || h[0].File.ID != old.ID {
		t.Fatalf("history lost the shared document: %+v", h)
	}
	for _, d := range []store.Document{recent, oldHeld} {
		if !f.objectExists(t, d.Object) {
			t.Fatalf("document %s deleted too early or under legal hold", d.ID)
		}
		readDocument(t, f.s, d.ConsultID, d.ID)
	}
	want := "document.expired " + open.ID + " " + old.ID
	if len(f.audit.entries) != 1 || f.audit.entries[0] != want {
		t.Fatalf("audit = %q, want [%q]", f.audit.entries, want)
	}
	if n, err := f.sweeper.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}
}

func TestSweepFinishesAnInterruptedDeletion(t *testing.T) {
	ctx := context.Background()
	f := newRetentionFixture(t)
	v, _ := f.s.Create(ctx, "u_doc", "", false)
	tests := []struct {
		name      string
		interrupt func(d store.Document)
	}{
		{"after the key", func(d store.Document) {
			if err := f.db.DestroyDocumentKey(ctx, d.ID, *f.now); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the object", func(d store.Document) {
			if err := f.db.DestroyDocumentKey(ctx, d.ID, *f.now); err != nil {
				t.Fatal(err)
			}
			if err := f.backend.Delete(ctx, d.Object); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.share(t, v.ID)
			tt.interrupt(d)
			// Even a hold set after the key was destroyed cannot bring
			// the content back: the deletion finishes.
			if _, err := f.db.SetLegalHold(ctx, v.ID, true); err != nil {
				t.Fatal(err)
			}
			f.audit.entries = nil
			if n, err := f.sweeper.Sweep(ctx); n != 1 || err != nil {
				t.Fatalf("Sweep = %d, %v; want 1", n, err)
			}
			if f.objectExists(t, d.Object) {
				t.Fatal("object left behind")
			}
			if row, _ := f.db.DocumentByID(ctx, v.ID, d.ID); row.DeletedAt.IsZero() {
				t.Fatal("row not made a tombstone")
			}
			if len(f.audit.entries) != 1 {
				t.Fatalf("audit = %q", f.audit.entries)
			}
			if _, err := f.db.SetLegalHold(ctx, v.ID, false); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSweepKeepsEverythingWithoutARetentionPeriod(t *testing.T) {
	ctx := context.Background()
	f := newRetentionFixture(t)
	f.sweeper.Retention = 0
	v, _ := f.s.Create(ctx, "u_doc", "", false)
	d := f.share(t, v.ID)
	*f.now = f.now.Add(10 * 365 * 24 * time.Hour)
	if n, err := f.sweeper.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	readDocument(t, f.s, v.ID, d.ID)
}

func TestSweeperRunSweepsAtStartThenEachPeriodUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		counts := &countingStore{}
		s := &Sweeper{Store: counts, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
			Retention: 24 * time.Hour, Every: time.Hour}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		synctest.Wait()
		if got := counts.queries.Load(); got != 1 {
			t.Fatalf("%d sweeps at start, want 1", got)
		}
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		if got := counts.queries.Load(); got != 3 {
			t.Fatalf("%d sweeps after two periods, want 3", got)
		}
		cancel()
		<-done
	})
}

// countingStore counts the sweeps that found nothing to delete.
type countingStore struct{ queries atomic.Int32 }

func (c *countingStore) DocumentsToExpire(context.Context, time.Time, int) ([]store.Document, error) {
	c.queries.Add(1)
	return nil, nil
}
func (c *countingStore) DestroyDocumentKey(context.Context, string, time.Time) error { return nil }
func (c *countingStore) MarkDocumentDeleted(context.Context, string, time.Time) (bool, error) {
	return false, nil
}
