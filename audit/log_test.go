package audit_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openconsult/openconsult/audit"
)

func TestAppendNumbersChainsAndDatesEntries(t *testing.T) {
	f := newFixture(t)
	var prev audit.Entry
	for i := range 5 {
		e := f.append(t, audit.Entry{Requester: "u_1"})
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d got seq %d", i+1, e.Seq)
		}
		if e.Time.Location() != time.UTC || !e.Time.After(prev.Time) {
			t.Fatalf("entry %d time %v after %v", e.Seq, e.Time, prev.Time)
		}
		wantPrev := ""
		if i > 0 {
			wantPrev = hex.EncodeToString(f.store.rows[i-1].LeafHash)
		}
		if e.Prev != wantPrev {
			t.Fatalf("entry %d prev %q, want %q", e.Seq, e.Prev, wantPrev)
		}
		stored := f.store.rows[i]
		if !bytes.Equal(stored.Canonical, canonical(t, e)) || !bytes.Equal(stored.LeafHash, audit.LeafHash(stored.Canonical)) {
			t.Fatalf("entry %d stored as %s", e.Seq, stored.Canonical)
		}
		prev = e
	}
}

func TestAppendNeverDatesAnEntryBeforeThePreviousOne(t *testing.T) {
	f := newFixture(t)
	first := f.append(t, audit.Entry{})
	f.clock.set(first.Time.Add(-time.Hour)) // the clock steps back
	second := f.append(t, audit.Entry{})
	if !second.Time.Equal(first.Time) {
		t.Fatalf("second entry dated %v, first %v", second.Time, first.Time)
	}
	third := f.append(t, audit.Entry{})
	if third.Time.Before(second.Time) {
		t.Fatalf("third entry dated %v before %v", third.Time, second.Time)
	}
	if rep, err := f.log.Verify(context.Background()); err != nil || !rep.OK {
		t.Fatalf("verify: %v %v", rep, err)
	}
}

func TestAppendRefusesEntriesWithoutTypeOrOutcome(t *testing.T) {
	f := newFixture(t)
	for _, e := range []audit.Entry{
		{Outcome: audit.Success},
		{Type: audit.TypeSignIn},
		{Type: audit.TypeSignIn, Outcome: "maybe"},
	} {
		if _, err := f.log.Append(context.Background(), e); err == nil {
			t.Errorf("Append(%+v) succeeded", e)
		}
	}
	if len(f.store.rows) != 0 {
		t.Fatalf("%d rows stored", len(f.store.rows))
	}
}

func TestAppendKeepsEntriesWithInvalidUTF8(t *testing.T) {
	f := newFixture(t)
	e := f.append(t, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Failure, UserAgent: "bad\xffagent", Fields: map[string]string{"k\xfe": "v\xfd"}})
	if e.UserAgent != "bad\uFFFDagent" || e.Fields["k\uFFFD"] != "v\uFFFD" {
		t.Fatalf("stored %+v", e)
	}
}

func TestConcurrentAppendsAreGapless(t *testing.T) {
	f := newFixture(t)
	other := audit.New(f.store, f.signer, f.clock.now) // a second node on the same storage
	const workers, each = 8, 25
	var wg sync.WaitGroup
	seqs := make(chan uint64, workers*each)
	for w := range workers {
		log := f.log
		if w%2 == 1 {
			log = other
		}
		wg.Go(func() {
			for range each {
				e, err := log.Append(context.Background(), audit.Entry{Type: audit.TypeSessionRequest, Outcome: audit.Success})
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- e.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d handed out twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= workers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	if rep, err := f.log.Verify(context.Background()); err != nil || !rep.OK || rep.Entries != workers*each {
		t.Fatalf("verify: %v %v", rep, err)
	}
}

func TestCheckpointIsSignedAndRefusedUnderAnotherKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for range 3 {
		f.append(t, audit.Entry{})
	}
	cp, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, ok, err := f.store.LatestAuditCheckpoint(ctx)
	if err != nil || !ok || stored.Size != 3 {
		t.Fatalf("stored checkpoint %+v %v %v", stored, ok, err)
	}
	text := string(stored.Note)
	if !strings.HasPrefix(text, origin+"\n3\n") || !strings.Contains(text, "\n\n\u2014 "+origin+" ") {
		t.Fatalf("not a C2SP checkpoint note:\n%s", text)
	}
	got, err := audit.OpenCheckpoint(stored.Note, f.signer.VerifierKey())
	if err != nil || got.Size != 3 || !bytes.Equal(got.Root, cp.Root) || got.Origin != origin {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}
	if _, err := audit.OpenCheckpoint(stored.Note, newSigner(t, origin).VerifierKey()); err == nil {
		t.Fatal("checkpoint opened with another key of the same name")
	}
	// Signed by another key under the right name: refused by Verify.
	forged, err := newSigner(t, origin).Sign(audit.Checkpoint{Origin: origin, Size: 3, Root: cp.Root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(forged, f.signer.VerifierKey()); err == nil {
		t.Fatal("forged checkpoint opened")
	}
	f.store.cps[0].Note = forged
	rep, err := f.log.Verify(ctx)
	if err != nil || rep.OK || rep.Kind != audit.KindCheckpoint {
		t.Fatalf("verify with a forged checkpoint: %+v, %v", rep, err)
	}
}

func TestCheckpointParserRefusesMalformedNotes(t *testing.T) {
	s := newSigner(t, origin)
	good, err := s.Sign(audit.Checkpoint{Origin: origin, Size: 5, Root: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpoint(good, s.VerifierKey()); err != nil {
		t.Fatalf("good checkpoint refused: %v", err)
	}
	other := newSigner(t, "other.example/audit")
	tests := map[string][]byte{
		"edited size":  bytes.Replace(good, []byte("\n5\n"), []byte("\n6\n"), 1),
		"no signature": []byte(origin + "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),
		"empty":        nil,
	}
	for name, note := range tests {
		if _, err := audit.OpenCheckpoint(note, s.VerifierKey()); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := audit.OpenCheckpoint(good, other.VerifierKey()); err == nil {
		t.Error("opened with the key of another log")
	}
	if _, err := audit.OpenCheckpoint(good, "not a key"); err == nil {
		t.Error("opened with a malformed key")
	}
	for _, cp := range []audit.Checkpoint{
		{Origin: origin, Size: 1, Root: make([]byte, 31)},
		{Origin: "other.example/audit", Size: 1, Root: make([]byte, 32)},
	} {
		if note, err := s.Sign(cp); err == nil {
			if _, err := audit.OpenCheckpoint(note, s.VerifierKey()); err == nil {
				t.Errorf("checkpoint %+v opened", cp)
			}
		}
	}
}

func TestCheckpointIsNotSignedOverABrokenLog(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for range 3 {
		f.append(t, audit.Entry{})
	}
	f.store.edit(func(rows []audit.Row) []audit.Row {
		rows[1].Canonical = bytes.Replace(rows[1].Canonical, []byte("accepted"), []byte("refused!"), 1)
		return rows
	})
	if _, err := f.log.Checkpoint(ctx); !errors.Is(err, audit.ErrInconsistent) {
		t.Fatalf("checkpoint over an edited entry: %v", err)
	}
	if n := f.store.checkpointCount(); n != 0 {
		t.Fatalf("%d checkpoints stored", n)
	}
	// Recording goes on: a broken row must not stop sign-ins.
	f.append(t, audit.Entry{})
}

func TestCheckpointIfGrownSignsOnlyNewEntries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if did, err := f.log.CheckpointIfGrown(ctx); err != nil || did {
		t.Fatalf("empty log: %v %v", did, err)
	}
	f.append(t, audit.Entry{})
	if did, err := f.log.CheckpointIfGrown(ctx); err != nil || !did {
		t.Fatalf("grown log: %v %v", did, err)
	}
	if did, err := f.log.CheckpointIfGrown(ctx); err != nil || did {
		t.Fatalf("unchanged log: %v %v", did, err)
	}
	// Another node's appends count too.
	other := audit.New(f.store, f.signer, f.clock.now)
	if _, err := other.Append(ctx, audit.Entry{Type: audit.TypeLockout, Outcome: audit.Success}); err != nil {
		t.Fatal(err)
	}
	if did, err := f.log.CheckpointIfGrown(ctx); err != nil || !did {
		t.Fatalf("log grown by another node: %v %v", did, err)
	}
	if latest, _, _ := f.store.LatestAuditCheckpoint(ctx); latest.Size != 2 {
		t.Fatalf("latest checkpoint covers %d", latest.Size)
	}
}

func TestRunIssuesCheckpointsAndStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = time.Hour
		f := newFixture(t)
		var logs bytes.Buffer
		log := audit.New(f.store, f.signer, f.clock.now, audit.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		f.append(t, audit.Entry{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			log.Run(ctx, every)
		}()
		synctest.Wait()
		if n := f.store.checkpointCount(); n != 1 {
			t.Fatalf("%d checkpoints when Run started, want 1 at once", n)
		}
		f.append(t, audit.Entry{})
		time.Sleep(every - time.Second)
		synctest.Wait()
		if n := f.store.checkpointCount(); n != 1 {
			t.Fatalf("%d checkpoints before the interval passed, want 1", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := f.store.checkpointCount(); n != 2 {
			t.Fatalf("%d checkpoints after the interval with a grown log, want 2", n)
		}
		time.Sleep(3 * every)
		synctest.Wait()
		if n := f.store.checkpointCount(); n != 2 {
			t.Fatalf("%d checkpoints for an unchanged log, want still 2", n)
		}
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run did not return after its context was cancelled")
		}
		if logs.Len() != 0 {
			t.Fatalf("Run logged: %s", logs.String())
		}
	})
}

func TestEntriesListsNewestFirstWithinTheFilter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for i := range 6 {
		f.append(t, audit.Entry{Type: audit.TypeSessionAccepted, Outcome: audit.Success, Requester: []string{"u_a", "u_b"}[i%2], Room: "c_1"})
	}
	f.append(t, audit.Entry{Type: audit.TypeUserDisabled, Outcome: audit.Success, Requester: "u_admin", Fields: map[string]string{"user": "u_a"}})
	got, err := f.log.Entries(ctx, audit.Filter{User: "u_a"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range got {
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 3 || seqs[0] != 7 || seqs[1] != 5 || seqs[2] != 3 {
		t.Fatalf("entries %v, want [7 5 3]", seqs)
	}
	if got, _ := f.log.Entries(ctx, audit.Filter{Type: "session."}, 100); len(got) != 6 {
		t.Fatalf("type prefix: %d entries", len(got))
	}
}

func TestEntriesShowsAnUnreadableEntryWhateverTheFilter(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		f.append(t, audit.Entry{Requester: "u_a"})
	}
	f.store.edit(func(rows []audit.Row) []audit.Row {
		rows[1].Canonical = []byte("garbage")
		return rows
	})
	got, err := f.log.Entries(context.Background(), audit.Filter{User: "u_b"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != 2 || !strings.Contains(got[0].Message, "unreadable") {
		t.Fatalf("entries %+v", got)
	}
}
