package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
)

// RunAudit runs the audit storage suite: what audit.Storage promises,
// held against a real database of the dialect.
func RunAudit(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"AppendsFromTwoLogsAreGaplessAndVerify", auditConcurrentAppends},
		{"FailedBuildStoresNothing", auditBuildFails},
		{"DuplicateSequenceNumberIsRefused", auditDuplicateSeq},
		{"RowsComeBackExactlyInOrderAcrossBatches", auditRowsInOrder},
		{"RowsStopAtTheCallersError", auditRowsStop},
		{"CheckpointsArePagedBySizeAndNeverReplaced", auditCheckpoints},
		{"LogVerifiesAndExportsOverTheStore", auditEndToEnd},
	})
}

// auditClock is an injected clock that advances a second per reading.
func auditClock() func() time.Time {
	var mu sync.Mutex
	now := time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

func auditSigner(t *testing.T) *audit.Signer {
	t.Helper()
	skey, _, err := audit.GenerateSigningKey("consult.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readRows(t *testing.T, db *store.DB, from uint64) []audit.Row {
	t.Helper()
	var rows []audit.Row
	if err := db.AuditRows(context.Background(), from, func(r audit.Row) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

func auditConcurrentAppends(t *testing.T, db *store.DB) {
	ctx := context.Background()
	signer, now := auditSigner(t), auditClock()
	// Two logs on one database stand for two signal nodes: only the
	// database's write lock keeps their numbers apart.
	logs := []*audit.Log{audit.New(db, signer, now), audit.New(db, signer, now)}
	const workers, each = 6, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := logs[w%2].Append(ctx, audit.Entry{Type: audit.TypeSessionRequest, Outcome: audit.Success,
					Requester: fmt.Sprintf("g_%d_%d", w, i), Room: "c_1", Message: "asked to join"})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rows := readRows(t, db, 0)
	if len(rows) != workers*each {
		t.Fatalf("%d rows, want %d", len(rows), workers*each)
	}
	for i, r := range rows {
		if r.Seq != uint64(i+1) {
			t.Fatalf("row %d has seq %d", i, r.Seq)
		}
	}
	if _, err := logs[0].Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, db, signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != workers*each || rep.Verified != workers*each {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

func auditBuildFails(t *testing.T, db *store.DB) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.AuditAppend(ctx, func(audit.Row) ([]audit.Row, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("AuditAppend = %v, want the build error", err)
	}
	if rows := readRows(t, db, 0); len(rows) != 0 {
		t.Fatalf("%d rows stored by a failed append", len(rows))
	}
	// The next append starts from nothing.
	if err := db.AuditAppend(ctx, func(last audit.Row) ([]audit.Row, error) {
		if last.Seq != 0 || last.Canonical != nil {
			t.Errorf("last row of an empty log: %+v", last)
		}
		return []audit.Row{{Seq: 1, Canonical: []byte("{}"), LeafHash: audit.LeafHash([]byte("{}"))}}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func auditDuplicateSeq(t *testing.T, db *store.DB) {
	ctx := context.Background()
	row := audit.Row{Seq: 1, Canonical: []byte("a"), LeafHash: audit.LeafHash([]byte("a"))}
	if err := db.AuditAppend(ctx, func(audit.Row) ([]audit.Row, error) { return []audit.Row{row}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.AuditAppend(ctx, func(audit.Row) ([]audit.Row, error) { return []audit.Row{row}, nil }); err == nil {
		t.Fatal("a second row numbered 1 was stored")
	}
	if rows := readRows(t, db, 0); len(rows) != 1 || string(rows[0].Canonical) != "a" {
		t.Fatalf("rows %+v", rows)
	}
}

func auditRowsInOrder(t *testing.T, db *store.DB) {
	ctx := context.Background()
	// More rows than one read batch (1000), with bytes a text column
	// would mangle.
	const n = 1010
	want := make([][]byte, n)
	for i := range n {
		want[i] = []byte(fmt.Sprintf("{\"n\":%d,\"x\":\"é\x00\xff\"}", i+1))
	}
	// Batches of one row, of more rows than one INSERT takes, and others.
	done := 0
	for _, size := range []int{1, 300, 2, 707} {
		err := db.AuditAppend(ctx, func(last audit.Row) ([]audit.Row, error) {
			if last.Seq != uint64(done) {
				return nil, fmt.Errorf("last row %d, want %d", last.Seq, done)
			}
			rows := make([]audit.Row, size)
			for j := range rows {
				c := want[done+j]
				rows[j] = audit.Row{Seq: uint64(done + j + 1), Canonical: c, LeafHash: audit.LeafHash(c)}
			}
			return rows, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		done += size
	}
	if done != n {
		t.Fatalf("appended %d rows, want %d", done, n)
	}
	for _, from := range []uint64{0, 1, 999, 1000, 1001, n, n + 1} {
		rows := readRows(t, db, from)
		first := max(from, 1)
		if uint64(len(rows)) != n+1-first {
			t.Fatalf("from %d: %d rows, want %d", from, len(rows), n+1-first)
		}
		for i, r := range rows {
			seq := first + uint64(i)
			if r.Seq != seq || !bytes.Equal(r.Canonical, want[seq-1]) || !bytes.Equal(r.LeafHash, audit.LeafHash(want[seq-1])) {
				t.Fatalf("from %d: row %d = %d %q", from, i, r.Seq, r.Canonical)
			}
		}
	}
}

func auditRowsStop(t *testing.T, db *store.DB) {
	ctx := context.Background()
	log := audit.New(db, auditSigner(t), auditClock())
	for range 3 {
		if _, err := log.Append(ctx, audit.Entry{Type: audit.TypeLockout, Outcome: audit.Success}); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("enough")
	calls := 0
	err := db.AuditRows(ctx, 1, func(audit.Row) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("AuditRows = %v after %d calls", err, calls)
	}
}

func auditCheckpoints(t *testing.T, db *store.DB) {
	ctx := context.Background()
	if _, ok, err := db.LatestAuditCheckpoint(ctx); err != nil || ok {
		t.Fatalf("latest of none: %v, %v", ok, err)
	}
	at := time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []audit.StoredCheckpoint{
		{Size: 5, Note: []byte("five"), CreatedAt: at},
		{Size: 2, Note: []byte("two"), CreatedAt: at.Add(time.Minute)},
		{Size: 9, Note: []byte("nine"), CreatedAt: at.Add(2 * time.Minute)},
		{Size: 2, Note: []byte("another two"), CreatedAt: at.Add(3 * time.Minute)},
	} {
		if err := db.AddAuditCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	page, err := db.AuditCheckpoints(ctx, 0, 2)
	if err != nil || len(page) != 2 || page[0].Size != 2 || string(page[0].Note) != "two" || page[1].Size != 5 {
		t.Fatalf("first page %+v, %v", page, err)
	}
	if !page[0].CreatedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("created at %v", page[0].CreatedAt)
	}
	page, err = db.AuditCheckpoints(ctx, 5, 2)
	if err != nil || len(page) != 1 || page[0].Size != 9 {
		t.Fatalf("second page %+v, %v", page, err)
	}
	latest, ok, err := db.LatestAuditCheckpoint(ctx)
	if err != nil || !ok || latest.Size != 9 || string(latest.Note) != "nine" {
		t.Fatalf("latest %+v, %v, %v", latest, ok, err)
	}
}

func auditEndToEnd(t *testing.T, db *store.DB) {
	ctx := context.Background()
	signer := auditSigner(t)
	log := audit.New(db, signer, auditClock())
	for i := range 6 {
		if _, err := log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: fmt.Sprintf("u_%d", i%2),
			Message: "password accepted", UserAgent: "Mozilla/5.0 <x> & é", Fields: map[string]string{"next": "totp"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, db, signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != 6 || rep.Checkpoints != 1 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	var doc, sheet bytes.Buffer
	if err := log.Export(ctx, &doc, audit.Filter{User: "u_1"}, "json", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.VerifyExport(&doc, signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != 4 { // three sign-ins and the export about u_1
		t.Fatalf("verify export: %+v, %v", rep, err)
	}
	if err := log.Export(ctx, &sheet, audit.Filter{}, "csv", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(sheet.String(), "\n"); n != 1+8 {
		t.Fatalf("csv of %d lines:\n%s", n, sheet.String())
	}
	if rep, err := audit.Verify(ctx, db, signer.VerifierKey()); err != nil || !rep.OK || rep.Entries != 8 {
		t.Fatalf("verify after exports: %+v, %v", rep, err)
	}
}
