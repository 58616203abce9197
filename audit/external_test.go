package audit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/syncbuf"
)

// anchored is a fixture whose log also keeps its checkpoints in a
// checkpoint file, with its process log captured.
type anchored struct {
	*fixture
	dir  string
	file *audit.CheckpointFile
	logs *syncbuf.Buffer
}

func newAnchored(t *testing.T) *anchored {
	t.Helper()
	a := &anchored{fixture: newFixture(t), dir: filepath.Join(t.TempDir(), "checkpoints.d"), logs: &syncbuf.Buffer{}}
	a.reopen(t)
	return a
}

// reopen starts the log anew, as a restarted process does.
func (a *anchored) reopen(t *testing.T) {
	t.Helper()
	if a.file != nil {
		a.file.Close()
	}
	cf, err := audit.OpenCheckpointFile(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cf.Close() })
	a.file = cf
	a.log = audit.New(a.store, a.signer, a.clock.now, audit.WithCheckpointFile(cf),
		audit.WithLogger(slog.New(slog.NewTextHandler(a.logs, nil))))
}

func (a *anchored) fill(t *testing.T, n int) {
	t.Helper()
	for range n {
		a.append(t, audit.Entry{Requester: "u_1"})
	}
}

func (a *anchored) checkpoint(t *testing.T) {
	t.Helper()
	if _, err := a.log.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// records is what the checkpoint file holds, by claimed size.
func (a *anchored) records(t *testing.T) []uint64 {
	t.Helper()
	recs, err := audit.ReadCheckpoints(a.file.Path())
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	for _, r := range recs {
		cp, err := audit.OpenCheckpoint(r.Note, a.signer.VerifierKey())
		if err != nil {
			t.Fatalf("%s: %v", r.Source, err)
		}
		sizes = append(sizes, cp.Size)
	}
	return sizes
}

func (a *anchored) external(t *testing.T) []audit.ExternalCheckpoint {
	t.Helper()
	exts, err := audit.ReadCheckpointFile(a.file.Path(), a.signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return exts
}

// cut removes the entries from seq on and every stored checkpoint, as a
// database writer hiding them would.
func (a *anchored) cut(seq uint64) {
	a.store.edit(func(rows []audit.Row) []audit.Row { return rows[:seq-1] })
	a.store.mu.Lock()
	a.store.cps = nil
	a.store.mu.Unlock()
}

// rewrite replaces entries from seq on with a consistent chain naming
// another requester, and removes every stored checkpoint.
func (a *anchored) rewrite(t *testing.T, seq uint64) {
	t.Helper()
	a.store.edit(func(rows []audit.Row) []audit.Row {
		prev := rows[seq-2].LeafHash
		for i := seq - 1; i < uint64(len(rows)); i++ {
			e, err := audit.ParseEntry(rows[i].Canonical)
			if err != nil {
				t.Fatal(err)
			}
			e.Requester, e.Prev = "u_mallory", hex.EncodeToString(prev)
			c := canonical(t, e)
			rows[i] = audit.Row{Seq: e.Seq, Canonical: c, LeafHash: audit.LeafHash(c)}
			prev = rows[i].LeafHash
		}
		return rows
	})
	a.store.mu.Lock()
	a.store.cps = nil
	a.store.mu.Unlock()
}

func TestCheckpointFileIsOwnerOnlyAppendOnlyAndSurvivesATornRecord(t *testing.T) {
	a := newAnchored(t)
	a.fill(t, 3)
	a.checkpoint(t)
	a.fill(t, 2)
	a.checkpoint(t)
	for path, want := range map[string]os.FileMode{a.dir: 0o700, a.file.Path(): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, %v; want %04o", path, fi.Mode().Perm(), err, want)
		}
	}
	if got := a.records(t); fmt.Sprint(got) != "[3 5]" {
		t.Fatalf("records %v, want [3 5]", got)
	}
	// A crash tore the next record half-way.
	f, err := os.OpenFile(a.file.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("bmV3IGNoZWNrcG9pbnQgdGhhdCBuZXZlciBmaW5p")
	f.Close()
	exts := a.external(t)
	if len(exts) != 1 || !strings.HasSuffix(exts[0].Source, "record 2") {
		t.Fatalf("newest checkpoint after a torn record: %+v", exts)
	}
	// The next start ends the torn line, so the next record is whole.
	a.reopen(t)
	if err := a.log.Start(context.Background()); err != nil || a.log.Alarm() != nil {
		t.Fatalf("start: %v, alarm %v", err, a.log.Alarm())
	}
	a.fill(t, 1)
	a.checkpoint(t)
	if got := a.records(t); fmt.Sprint(got) != "[3 5 6]" {
		t.Fatalf("records %v, want [3 5 6]", got)
	}
	if rep, err := a.log.Verify(context.Background()); err != nil || !rep.OK || rep.External != 6 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestCheckpointFileOpenToOthersIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpointFile(dir); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("directory 0755: %v", err)
	}
	os.Chmod(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, audit.CheckpointFileName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenCheckpointFile(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("file 0644: %v", err)
	}
}

func TestVerifyAgainstTheCheckpointFileFindsWhatTheDatabaseAloneHides(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, a *anchored)
		first  uint64
		kind   audit.Kind
	}{
		{"last entries deleted with the checkpoints", func(t *testing.T, a *anchored) { a.cut(8) }, 8, audit.KindRemoved},
		{"chain rewritten from entry 6 at the same length, checkpoints deleted", func(t *testing.T, a *anchored) { a.rewrite(t, 6) }, 1, audit.KindAltered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAnchored(t)
			a.fill(t, 10)
			a.checkpoint(t)
			tt.tamper(t, a)
			// The database alone no longer shows it.
			if rep, err := audit.Verify(context.Background(), a.store, a.signer.VerifierKey()); err != nil || !rep.OK {
				t.Fatalf("database alone: %+v %v", rep, err)
			}
			rep, err := audit.Verify(context.Background(), a.store, a.signer.VerifierKey(), a.external(t)...)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.FirstBad != tt.first || rep.Kind != tt.kind {
				t.Fatalf("report %+v, want entry %d %s", rep, tt.first, tt.kind)
			}
			if !strings.Contains(rep.Problem, a.file.Path()) {
				t.Fatalf("problem %q does not name the checkpoint file", rep.Problem)
			}
		})
	}
}

func TestVerifyNamesAForgedExternalCheckpoint(t *testing.T) {
	a := newAnchored(t)
	a.fill(t, 4)
	a.checkpoint(t)
	forged, err := newSigner(t, origin).Sign(audit.Checkpoint{Origin: origin, Size: 9, Root: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.file.Append(forged); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(context.Background(), a.store, a.signer.VerifierKey(), a.external(t)...)
	if err != nil || rep.OK || rep.Kind != audit.KindCheckpoint || !strings.Contains(rep.Problem, "record 2") {
		t.Fatalf("report %+v %v", rep, err)
	}
}

func TestStartRaisesTheAlarmAndSignsNothingOverAContradictedLog(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, a *anchored)
		want   string
	}{
		{"shorter than the external checkpoint", func(t *testing.T, a *anchored) { a.cut(8) }, "entries 8 to 10 were removed"},
		{"rewritten at the same length", func(t *testing.T, a *anchored) { a.rewrite(t, 6) }, "the log was rewritten"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a := newAnchored(t)
			a.fill(t, 10)
			a.checkpoint(t)
			tt.tamper(t, a)
			a.reopen(t)
			if err := a.log.Start(ctx); err != nil {
				t.Fatal(err)
			}
			alarm := a.log.Alarm()
			if !errors.Is(alarm, audit.ErrContradicted) || !strings.Contains(alarm.Error(), tt.want) {
				t.Fatalf("alarm %v, want %q", alarm, tt.want)
			}
			if !strings.Contains(a.logs.String(), "level=ERROR") || !strings.Contains(a.logs.String(), tt.want) {
				t.Fatalf("alarm not logged at error:\n%s", a.logs)
			}
			// Recording goes on, but nothing is signed over it: not at
			// start, not on demand, not when it grew, not at an export.
			a.fill(t, 5)
			if _, err := a.log.Checkpoint(ctx); !errors.Is(err, audit.ErrContradicted) {
				t.Fatalf("checkpoint: %v", err)
			}
			if _, err := a.log.CheckpointIfGrown(ctx); !errors.Is(err, audit.ErrContradicted) {
				t.Fatalf("checkpoint if grown: %v", err)
			}
			if err := a.log.Shutdown(ctx); !errors.Is(err, audit.ErrContradicted) {
				t.Fatalf("shutdown: %v", err)
			}
			for _, format := range []string{"json", "csv"} {
				if err := a.log.Export(ctx, &bytes.Buffer{}, audit.Filter{}, format, "u_auditor"); !errors.Is(err, audit.ErrContradicted) {
					t.Fatalf("%s export: %v", format, err)
				}
			}
			if n := a.store.checkpointCount(); n != 0 {
				t.Fatalf("%d checkpoints stored over the contradicted log", n)
			}
			if got := a.records(t); fmt.Sprint(got) != "[10]" {
				t.Fatalf("checkpoint file holds %v, want [10]", got)
			}
		})
	}
}

func TestStartAndShutdownCheckpointALogThatGrew(t *testing.T) {
	ctx := context.Background()
	a := newAnchored(t)
	a.fill(t, 3) // a short-lived process appended and stopped uncleanly
	a.reopen(t)
	if err := a.log.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.records(t); fmt.Sprint(got) != "[3]" || a.store.checkpointCount() != 1 {
		t.Fatalf("after start: file %v, %d stored", got, a.store.checkpointCount())
	}
	a.fill(t, 2)
	if err := a.log.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.records(t); fmt.Sprint(got) != "[3 5]" {
		t.Fatalf("after shutdown: file %v", got)
	}
	// Nothing grew: neither the next start nor its shutdown signs again.
	a.reopen(t)
	if err := a.log.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.log.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.records(t); fmt.Sprint(got) != "[3 5]" || a.store.checkpointCount() != 2 || a.log.Alarm() != nil {
		t.Fatalf("unchanged log: file %v, %d stored, alarm %v", got, a.store.checkpointCount(), a.log.Alarm())
	}
	// Deleted database checkpoints are not re-signed either: the file has them.
	a.store.mu.Lock()
	a.store.cps = nil
	a.store.mu.Unlock()
	if did, err := a.log.CheckpointIfGrown(ctx); err != nil || did {
		t.Fatalf("checkpoint if grown with the file up to date: %v %v", did, err)
	}
}

func TestCSVExportIssuesACheckpoint(t *testing.T) {
	a := newAnchored(t)
	a.fill(t, 4)
	if err := a.log.Export(context.Background(), &bytes.Buffer{}, audit.Filter{}, "csv", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	if got := a.records(t); fmt.Sprint(got) != "[5]" || a.store.checkpointCount() != 1 {
		t.Fatalf("after a CSV export: file %v, %d stored", got, a.store.checkpointCount())
	}
}

func TestExportOfACutLogIsFoundWithTheCheckpointFile(t *testing.T) {
	ctx := context.Background()
	a := newAnchored(t)
	a.fill(t, 10)
	a.checkpoint(t)
	// The tail is cut, and the export is made by a process that does not
	// have the checkpoint file: its checkpoint is valid for what it saw.
	a.cut(9)
	blind := audit.New(a.store, a.signer, a.clock.now)
	var doc bytes.Buffer
	if err := blind.Export(ctx, &doc, audit.Filter{User: "u_1"}, "json", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	vkey := a.signer.VerifierKey()
	if rep, err := audit.VerifyExport(bytes.NewReader(doc.Bytes()), vkey); err != nil || !rep.OK {
		t.Fatalf("export alone: %+v %v", rep, err)
	}
	recs, err := audit.ReadCheckpoints(a.file.Path())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExport(bytes.NewReader(doc.Bytes()), vkey, recs...)
	if err != nil || rep.OK || rep.Kind != audit.KindRemoved || rep.FirstBad != 10 ||
		!strings.Contains(rep.Problem, "entries 10 to 10 are missing") || !strings.Contains(rep.Problem, a.file.Path()) {
		t.Fatalf("export of a cut log with the checkpoint file: %+v %v", rep, err)
	}
}

func TestExportVerifiesAgainstItsOwnRecordInTheCheckpointFile(t *testing.T) {
	ctx := context.Background()
	a := newAnchored(t)
	a.fill(t, 6)
	a.checkpoint(t)
	var doc bytes.Buffer
	if err := a.log.Export(ctx, &doc, audit.Filter{}, "json", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	a.fill(t, 3) // the log grows on after the export
	a.checkpoint(t)
	vkey := a.signer.VerifierKey()
	recs, err := audit.ReadCheckpoints(a.file.Path())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExport(bytes.NewReader(doc.Bytes()), vkey, recs...)
	if err != nil || !rep.OK || rep.External != 7 || !strings.Contains(rep.String(), "record 2") {
		t.Fatalf("export with the checkpoint file: %+v %v", rep, err)
	}
	// One later checkpoint alone cannot tell a cut from an older export.
	newest := a.external(t)
	if rep, err := audit.VerifyExport(bytes.NewReader(doc.Bytes()), vkey, newest...); err != nil || rep.OK || rep.Kind != audit.KindRemoved {
		t.Fatalf("export with a later checkpoint: %+v %v", rep, err)
	}
	// An older one proves nothing about the tail.
	if _, err := audit.VerifyExport(bytes.NewReader(doc.Bytes()), vkey, recs[0]); err == nil {
		t.Fatal("an older checkpoint was accepted as proof")
	}
}

func FuzzParseCheckpoints(f *testing.F) {
	s := newSigner(f, origin)
	good, err := s.Sign(audit.Checkpoint{Origin: origin, Size: 3, Root: make([]byte, 32)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(base64Line(good) + base64Line(good)[:20]))
	f.Add([]byte("Dec  1 host openconsult-audit[1]: audit checkpoint 3 " + base64Line(good)))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := audit.ParseCheckpoints(bytes.NewReader(data), "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		newest, err := audit.NewestCheckpoints(recs, s.VerifierKey())
		if err != nil || len(newest) > len(recs) {
			t.Fatalf("newest of %d records: %d, %v", len(recs), len(newest), err)
		}
		for _, r := range newest[:max(len(newest)-1, 0)] {
			if _, err := audit.OpenCheckpoint(r.Note, s.VerifierKey()); err == nil {
				t.Fatalf("a valid checkpoint listed as a larger forged claim: %s", r.Source)
			}
		}
	})
}

func base64Line(note []byte) string { return base64.StdEncoding.EncodeToString(note) + "\n" }

// BenchmarkReadCheckpointFile reads a checkpoint file of a year of
// five-minute checkpoints (105,120 records) and picks the newest.
func BenchmarkReadCheckpointFile(b *testing.B) {
	s := newSigner(b, origin)
	dir := filepath.Join(b.TempDir(), "cp")
	cf, err := audit.OpenCheckpointFile(dir)
	if err != nil {
		b.Fatal(err)
	}
	// Only the newest record is ever verified; the older ones differ in
	// size and carry a signature line of the right shape.
	newest, err := s.Sign(audit.Checkpoint{Origin: origin, Size: 1_051_200, Root: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	sig := newest[bytes.Index(newest, []byte("\n\n")):]
	var buf bytes.Buffer
	for size := uint64(1); size < 105_120; size++ {
		text := fmt.Sprintf("%s\n%d\n%s\n", origin, size*10, base64.StdEncoding.EncodeToString(make([]byte, 32)))
		buf.WriteString(base64Line(append([]byte(text), sig...)))
	}
	buf.WriteString(base64Line(newest))
	cf.Close()
	if err := os.WriteFile(filepath.Join(dir, audit.CheckpointFileName), buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for b.Loop() {
		exts, err := audit.ReadCheckpointFile(filepath.Join(dir, audit.CheckpointFileName), s.VerifierKey())
		if err != nil || len(exts) != 1 {
			b.Fatal(len(exts), err)
		}
	}
}

func TestEntriesRemovedWhileTheLogRunsRaiseTheAlarm(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, a *anchored)
	}{
		{"newest entries deleted", func(t *testing.T, a *anchored) { a.cut(8) }},
		{"newest entries deleted and as many appended", func(t *testing.T, a *anchored) {
			a.cut(8)
			other := audit.New(a.store, a.signer, a.clock.now)
			for range 3 {
				if _, err := other.Append(context.Background(), audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"newest entry rewritten", func(t *testing.T, a *anchored) { a.rewrite(t, 10) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a := newAnchored(t)
			if err := a.log.Start(ctx); err != nil {
				t.Fatal(err)
			}
			a.fill(t, 10)
			a.checkpoint(t)
			tt.tamper(t, a)
			if _, err := a.log.CheckpointIfGrown(ctx); !errors.Is(err, audit.ErrContradicted) {
				t.Fatalf("checkpoint if grown: %v", err)
			}
			if !errors.Is(a.log.Alarm(), audit.ErrContradicted) || !strings.Contains(a.logs.String(), "level=ERROR") {
				t.Fatalf("alarm %v, logs:\n%s", a.log.Alarm(), a.logs)
			}
			if got := a.records(t); fmt.Sprint(got) != "[10]" {
				t.Fatalf("checkpoint file holds %v, want [10]", got)
			}
		})
	}
}

func TestANewCheckpointFileCatchesUpAtStart(t *testing.T) {
	ctx := context.Background()
	a := newAnchored(t)
	// The log and its checkpoints predate the checkpoint file.
	before := audit.New(a.store, a.signer, a.clock.now)
	for range 5 {
		if _, err := before.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := before.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.log.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.records(t); fmt.Sprint(got) != "[5]" || a.log.Alarm() != nil {
		t.Fatalf("checkpoint file after start: %v, alarm %v", got, a.log.Alarm())
	}
}
