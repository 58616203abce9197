package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

func TestSQLiteAudit(t *testing.T) { storetest.RunAudit(t, openSQLite) }

const auditOrigin = "consult.example/audit"

// tamperFixture is a SQLite audit log of ten sign-ins with checkpoints
// signed at 4, 8 and 10 entries.
type tamperFixture struct {
	db     *store.DB
	signer *audit.Signer
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	ctx := context.Background()
	db := openSQLite(t)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "audit-signing.key"), auditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	log := audit.New(db, signer, func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Second); return clock })
	for i := 1; i <= 10; i++ {
		if _, err := log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: fmt.Sprintf("u_%d", i),
			Message: "password accepted", SourceIP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
		if i == 4 || i == 8 || i == 10 {
			if _, err := log.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &tamperFixture{db: db, signer: signer}
}

func (f *tamperFixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := store.ExecAuditForTest(context.Background(), f.db, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (f *tamperFixture) entry(t *testing.T, seq uint64) audit.Entry {
	t.Helper()
	var e audit.Entry
	err := f.db.AuditRows(context.Background(), seq, func(r audit.Row) error {
		var err error
		e, err = audit.ParseEntry(r.Canonical)
		return fmt.Errorf("stop: %w", err)
	})
	if e.Seq != seq {
		t.Fatalf("read entry %d: %v", seq, err)
	}
	return e
}

// put stores e as row seq with its own leaf hash, as a forger who knows
// the format would.
func (f *tamperFixture) put(t *testing.T, seq uint64, e audit.Entry) []byte {
	t.Helper()
	c, err := e.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	leaf := audit.LeafHash(c)
	f.exec(t, `INSERT INTO audit_entries (seq, canonical, leaf_hash) VALUES (?, ?, ?)
		ON CONFLICT (seq) DO UPDATE SET canonical = excluded.canonical, leaf_hash = excluded.leaf_hash`, seq, c, leaf)
	return leaf
}

func (f *tamperFixture) verify(t *testing.T) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), f.db, f.signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestIntactSQLiteAuditLogVerifies(t *testing.T) {
	f := newTamperFixture(t)
	rep := f.verify(t)
	if !rep.OK || rep.Entries != 10 || rep.Checkpoints != 3 || rep.Verified != 10 || rep.FirstBad != 0 {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(rep.String(), "audit log intact: 10 entries") {
		t.Fatalf("report reads %q", rep)
	}
}

func TestTamperingWithTheSQLiteAuditLogIsFoundAndNamed(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, f *tamperFixture)
		first  uint64
		kind   audit.Kind
	}{
		{"edited row", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `UPDATE audit_entries SET canonical = CAST(replace(CAST(canonical AS TEXT), 'success', 'failure') AS BLOB) WHERE seq = 5`)
		}, 5, audit.KindAltered},
		{"edited row no longer canonical", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `UPDATE audit_entries SET canonical = CAST(replace(CAST(canonical AS TEXT), '"seq":5,', '"seq": 5,') AS BLOB) WHERE seq = 5`)
		}, 5, audit.KindAltered},
		{"edited row with its hash recomputed", func(t *testing.T, f *tamperFixture) {
			e := f.entry(t, 6)
			e.Outcome = audit.Failure
			f.put(t, 6, e)
		}, 6, audit.KindAltered},
		{"deleted middle row", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 3`)
		}, 3, audit.KindRemoved},
		{"deleted middle row, later rows renumbered", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 3`)
			f.exec(t, `UPDATE audit_entries SET seq = -seq WHERE seq > 3`)
			f.exec(t, `UPDATE audit_entries SET seq = -seq - 1 WHERE seq < 0`)
		}, 3, audit.KindRemoved},
		{"deleted first row", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 1`)
		}, 1, audit.KindRemoved},
		{"deleted last row", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq = 10`)
		}, 10, audit.KindRemoved},
		{"deleted last rows", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq >= 7`)
		}, 7, audit.KindRemoved},
		{"inserted row, later rows renumbered", func(t *testing.T, f *tamperFixture) {
			prev := f.entry(t, 1)
			f.exec(t, `UPDATE audit_entries SET seq = -seq WHERE seq >= 2`)
			f.exec(t, `UPDATE audit_entries SET seq = -seq + 1 WHERE seq < 0`)
			c, _ := prev.Canonical()
			f.put(t, 2, audit.Entry{Seq: 2, Time: prev.Time, Type: audit.TypeSignIn, Outcome: audit.Success, Requester: "u_mallory",
				Message: "password accepted", Prev: hex.EncodeToString(audit.LeafHash(c))})
		}, 2, audit.KindInserted},
		{"copy of an earlier row appended", func(t *testing.T, f *tamperFixture) {
			e := f.entry(t, 3)
			f.put(t, 11, e)
		}, 11, audit.KindInserted},
		{"row numbered 0 inserted", func(t *testing.T, f *tamperFixture) {
			f.put(t, 0, audit.Entry{Time: time.Date(2026, 8, 1, 9, 0, 0, 0, time.UTC), Type: audit.TypeSignIn, Outcome: audit.Success})
		}, 1, audit.KindInserted},
		{"two rows swapped", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `UPDATE audit_entries SET seq = 100 WHERE seq = 4`)
			f.exec(t, `UPDATE audit_entries SET seq = 4 WHERE seq = 5`)
			f.exec(t, `UPDATE audit_entries SET seq = 5 WHERE seq = 100`)
		}, 4, audit.KindReordered},
		{"two rows swapped with their numbers and hashes rewritten", func(t *testing.T, f *tamperFixture) {
			four, five := f.entry(t, 4), f.entry(t, 5)
			four.Seq, five.Seq = 5, 4
			f.put(t, 4, five)
			f.put(t, 5, four)
		}, 4, audit.KindAltered},
		{"log rewritten from entry 6 with a consistent chain", func(t *testing.T, f *tamperFixture) {
			e := f.entry(t, 5)
			c, _ := e.Canonical()
			prev := audit.LeafHash(c)
			for seq := uint64(6); seq <= 10; seq++ {
				e := f.entry(t, seq)
				e.Requester, e.Prev = "u_mallory", hex.EncodeToString(prev)
				prev = f.put(t, seq, e)
			}
		}, 5, audit.KindAltered},
		{"checkpoint signed with another key", func(t *testing.T, f *tamperFixture) {
			other, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "other.key"), auditOrigin)
			if err != nil {
				t.Fatal(err)
			}
			note, err := other.Sign(audit.Checkpoint{Origin: auditOrigin, Size: 10, Root: make([]byte, 32)})
			if err != nil {
				t.Fatal(err)
			}
			f.exec(t, `UPDATE audit_checkpoints SET note = ? WHERE size = 10`, note)
		}, 0, audit.KindCheckpoint},
		{"checkpoint size edited", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `UPDATE audit_checkpoints SET size = 7 WHERE size = 8`)
		}, 0, audit.KindCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTamperFixture(t)
			tt.tamper(t, f)
			rep := f.verify(t)
			if rep.OK {
				t.Fatalf("tampering not found: %s", rep)
			}
			if rep.FirstBad != tt.first || rep.Kind != tt.kind {
				t.Fatalf("report names entry %d (%s: %q), want entry %d (%s)", rep.FirstBad, rep.Kind, rep.Problem, tt.first, tt.kind)
			}
			if tt.first > 0 && !strings.Contains(rep.Problem, fmt.Sprintf("entry %d ", tt.first)) && !strings.Contains(rep.Problem, fmt.Sprintf("entries %d ", tt.first)) {
				t.Fatalf("problem %q does not name entry %d", rep.Problem, tt.first)
			}
		})
	}
}

// TestTamperingHiddenFromTheDatabaseIsFoundWithTheCheckpointFile covers
// what the database alone cannot show: a writer who removes the newest
// entries, or rewrites the chain, and deletes the stored checkpoints with
// them.
func TestTamperingHiddenFromTheDatabaseIsFoundWithTheCheckpointFile(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, f *tamperFixture)
		first  uint64
		kind   audit.Kind
	}{
		{"newest entries deleted", func(t *testing.T, f *tamperFixture) {
			f.exec(t, `DELETE FROM audit_entries WHERE seq >= 9`)
		}, 9, audit.KindRemoved},
		{"chain rewritten from entry 4 at the same length", func(t *testing.T, f *tamperFixture) {
			e := f.entry(t, 3)
			c, _ := e.Canonical()
			prev := audit.LeafHash(c)
			for seq := uint64(4); seq <= 10; seq++ {
				e := f.entry(t, seq)
				e.Requester, e.Prev = "u_mallory", hex.EncodeToString(prev)
				prev = f.put(t, seq, e)
			}
		}, 1, audit.KindAltered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newTamperFixture(t)
			dir := filepath.Join(t.TempDir(), "audit-checkpoints")
			cf, err := audit.OpenCheckpointFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer cf.Close()
			log := audit.New(f.db, f.signer, time.Now, audit.WithCheckpointFile(cf))
			if err := log.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := log.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			tt.tamper(t, f)
			f.exec(t, `DELETE FROM audit_checkpoints`)
			if rep := f.verify(t); !rep.OK {
				t.Fatalf("the database alone shows it: %s", rep)
			}
			exts, err := audit.ReadCheckpointFile(cf.Path(), f.signer.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			rep, err := audit.Verify(ctx, f.db, f.signer.VerifierKey(), exts...)
			if err != nil || rep.OK || rep.FirstBad != tt.first || rep.Kind != tt.kind || !strings.Contains(rep.Problem, cf.Path()) {
				t.Fatalf("with the checkpoint file: %+v %v, want entry %d %s", rep, err, tt.first, tt.kind)
			}
			restarted := audit.New(f.db, f.signer, time.Now, audit.WithCheckpointFile(cf))
			if err := restarted.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(restarted.Alarm(), audit.ErrContradicted) {
				t.Fatalf("no alarm at start: %v", restarted.Alarm())
			}
			if _, err := restarted.Checkpoint(ctx); err == nil {
				t.Fatal("checkpoint signed over the contradicted log")
			}
		})
	}
}
