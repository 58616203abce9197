package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
)

type fixture struct {
	db     *store.DB
	raw    *sql.DB // a second handle on the same file, for tampering
	log    *audit.Log
	signer *audit.Signer
	clock  time.Time
}

func newFixture(t *testing.T, entries int) *fixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	signer, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"), "consult.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, raw: raw, signer: signer, clock: time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)}
	f.log = audit.New(db, signer, func() time.Time { f.clock = f.clock.Add(time.Second); return f.clock })
	for i := range entries {
		if _, err := f.log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: "u_" + string(rune('a'+i%26)),
			Message: "password accepted", SourceIP: "192.0.2.1", Fields: map[string]string{"n": hex.EncodeToString([]byte{byte(i)})}}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%4 == 0 {
			if _, err := f.log.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) verify(t *testing.T) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), f.db, f.signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestRFC6962TreeHeads(t *testing.T) {
	// The reference vectors of RFC 6962's reference implementation
	// (certificate-transparency merkle_tree_test): eight leaves, the root
	// after each.
	leaves := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	roots := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	var hashes [][]byte
	for i, l := range leaves {
		b, _ := hex.DecodeString(l)
		hashes = append(hashes, audit.LeafHash(b))
		if got := hex.EncodeToString(audit.RootForTest(hashes)); got != roots[i] {
			t.Errorf("root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
		if got := hex.EncodeToString(audit.CompactRootForTest(hashes)); got != roots[i] {
			t.Errorf("compact root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
	}
}

func TestCanonicalEncodingIsStable(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	a := audit.Entry{Seq: 1, Time: at, Type: "signin", Outcome: "success", Fields: map[string]string{"b": "2", "a": "1"}}
	b := audit.Entry{Seq: 1, Time: at.UTC(), Type: "signin", Outcome: "success", Fields: map[string]string{"a": "1", "b": "2"}}
	if !bytes.Equal(a.Canonical(), b.Canonical()) {
		t.Fatalf("%s != %s", a.Canonical(), b.Canonical())
	}
	if !strings.Contains(string(a.Canonical()), `"time":"2026-01-02T02:04:05.000000006Z"`) {
		t.Fatalf("time not UTC with nanoseconds: %s", a.Canonical())
	}
}

func TestIntactLogVerifies(t *testing.T) {
	f := newFixture(t, 10)
	rep := f.verify(t)
	if !rep.OK || rep.Entries != 10 || rep.Checkpoints != 2 || rep.Verified != 8 {
		t.Fatalf("report %+v", rep)
	}
}

func TestTamperingIsDetectedAndNamed(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, f *fixture)
		bad    uint64
		words  string
	}{
		{"edited message", func(t *testing.T, f *fixture) {
			f.exec(t, `UPDATE audit_entries SET canonical = replace(canonical, 'password accepted', 'password refused') WHERE seq = 5`)
		}, 5, "altered"},
		{"edited with a recomputed leaf hash", func(t *testing.T, f *fixture) {
			var c []byte
			f.raw.QueryRow(`SELECT canonical FROM audit_entries WHERE seq = 6`).Scan(&c)
			c = bytes.Replace(c, []byte("u_f"), []byte("u_z"), 1)
			f.exec(t, `UPDATE audit_entries SET canonical = ?, leaf_hash = ? WHERE seq = 6`, c, audit.LeafHash(c))
		}, 6, "altered"},
		{"deleted middle entry", func(t *testing.T, f *fixture) { f.exec(t, `DELETE FROM audit_entries WHERE seq = 3`) }, 3, "missing"},
		{"deleted last entries", func(t *testing.T, f *fixture) { f.exec(t, `DELETE FROM audit_entries WHERE seq >= 7`) }, 7, "removed"},
		{"swapped entries", func(t *testing.T, f *fixture) {
			f.exec(t, `UPDATE audit_entries SET seq = 100 WHERE seq = 4`)
			f.exec(t, `UPDATE audit_entries SET seq = 4 WHERE seq = 5`)
			f.exec(t, `UPDATE audit_entries SET seq = 5 WHERE seq = 100`)
		}, 4, "reordered"},
		{"inserted entry renumbering the rest", func(t *testing.T, f *fixture) {
			for seq := 10; seq >= 2; seq-- {
				f.exec(t, `UPDATE audit_entries SET seq = seq + 1 WHERE seq = ?`, seq)
			}
			var prev []byte
			f.raw.QueryRow(`SELECT leaf_hash FROM audit_entries WHERE seq = 1`).Scan(&prev)
			forged := audit.Entry{Seq: 2, Time: time.Date(2026, 8, 1, 10, 0, 1, 0, time.UTC), Type: "signin", Outcome: "success",
				Requester: "u_mallory", Message: "password accepted", Prev: hex.EncodeToString(prev)}
			c := forged.Canonical()
			f.exec(t, `INSERT INTO audit_entries (seq, canonical, leaf_hash) VALUES (2, ?, ?)`, c, audit.LeafHash(c))
		}, 2, "inserted"},
		{"forged checkpoint", func(t *testing.T, f *fixture) {
			other, _ := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "other.key"), "consult.example/audit")
			note, _ := other.Sign(audit.Checkpoint{Origin: "consult.example/audit", Size: 10, Root: make([]byte, 32)})
			f.exec(t, `INSERT INTO audit_checkpoints (size, note, created_at) VALUES (10, ?, 0)`, note)
		}, 0, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 10)
			tt.tamper(t, f)
			rep := f.verify(t)
			if rep.OK {
				t.Fatal("tampering not detected")
			}
			if rep.FirstBad != tt.bad || !strings.Contains(rep.Problem, tt.words) {
				t.Fatalf("report names entry %d (%q), want %d with %q", rep.FirstBad, rep.Problem, tt.bad, tt.words)
			}
		})
	}
}

func TestExportRoundTripsAndIsAudited(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 9)
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf, audit.Filter{User: "u_c"}, "json", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), f.signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != 2 || rep.Verified != 10 { // her sign-in and the export about her
		t.Fatalf("VerifyExport = %+v, %v", rep, err)
	}
	// The export recorded itself.
	var all bytes.Buffer
	f.log.Export(ctx, &all, audit.Filter{User: "u_auditor"}, "json", "u_auditor")
	if rep, _ := audit.VerifyExport(&all, f.signer.VerifierKey()); !rep.OK || rep.Entries != 2 {
		t.Fatalf("export records: %+v", rep)
	}

	tampers := map[string]func(string) string{
		"edited entry": func(s string) string { return strings.Replace(s, `password accepted`, `password refused`, 1) },
		"edited proof": func(s string) string {
			i := strings.Index(s, `"inclusion_proof":[`) + len(`"inclusion_proof":[`) + 5
			return s[:i] + "A" + s[i+1:]
		},
		"edited checkpoint": func(s string) string { return strings.Replace(s, "\\n10\\n", "\\n11\\n", 1) },
	}
	for name, tamper := range tampers {
		bad := tamper(buf.String())
		if bad == buf.String() {
			t.Fatalf("%s: tamper changed nothing", name)
		}
		rep, err := audit.VerifyExport(strings.NewReader(bad), f.signer.VerifierKey())
		if err == nil && rep.OK {
			t.Errorf("%s: accepted", name)
		}
	}
	other, _ := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "o.key"), "consult.example/audit")
	if rep, _ := audit.VerifyExport(bytes.NewReader(buf.Bytes()), other.VerifierKey()); rep.OK {
		t.Fatal("export verified with another log's key")
	}
}

func TestCSVExportGuardsFormulas(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	f.log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Failure, Requester: "u_x", Message: "=HYPERLINK(\"http://evil\")", UserAgent: "+cmd"})
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf, audit.Filter{}, "csv", "u_auditor"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "seq,time,type,outcome") || !strings.Contains(out, `'=HYPERLINK`) || !strings.Contains(out, "'+cmd") {
		t.Fatalf("csv:\n%s", out)
	}
}

func TestConcurrentAppendsAreGapless(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := f.log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Message: "x"}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if rep := f.verify(t); !rep.OK || rep.Entries != 80 {
		t.Fatalf("report %+v", rep)
	}
}

func FuzzVerifyExport(f *testing.F) {
	signer, _ := audit.LoadOrCreateSigner(filepath.Join(f.TempDir(), "k"), "fuzz/audit")
	doc, _ := json.Marshal(map[string]any{"format": "openconsult-audit-export-v1", "checkpoint": "x", "entries": []any{}})
	f.Add(doc)
	f.Add([]byte(`{"format":"openconsult-audit-export-v1","checkpoint":"fuzz/audit\n1\nAAAA\n\n— fuzz/audit x\n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := audit.VerifyExport(bytes.NewReader(b), signer.VerifierKey())
		if err == nil && rep.OK && rep.Entries > 0 {
			t.Fatalf("unsigned export verified: %s", b)
		}
	})
}
