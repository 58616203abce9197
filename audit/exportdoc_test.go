package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
)

// exportFixture is a log of ten entries by two users with a checkpoint
// after the eighth.
func exportFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	for i := range 10 {
		user := []string{"u_alice", "u_bob"}[i%3%2]
		f.append(t, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: user, Message: "password accepted <ok> & more",
			SourceIP: "192.0.2.1", Fields: map[string]string{"n": string(rune('a' + i))}})
		if i == 7 {
			if _, err := f.log.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func export(t *testing.T, f *fixture, flt audit.Filter, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.log.Export(context.Background(), &buf, flt, format, "u_auditor"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestJSONExportVerifiesOfflineAndRecordsItself(t *testing.T) {
	tests := []struct {
		name   string
		filter audit.Filter
		want   int
	}{
		{"everything", audit.Filter{}, 11}, // ten entries and the export's own record
		{"one user, and the export about them", audit.Filter{User: "u_bob"}, 4},
		{"time window", audit.Filter{Since: time.Date(2026, 8, 1, 10, 0, 3, 0, time.UTC), Until: time.Date(2026, 8, 1, 10, 0, 6, 0, time.UTC)}, 3},
		{"unknown user: only the export about them", audit.Filter{User: "u_nobody"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := exportFixture(t)
			doc := export(t, f, tt.filter, "json")
			rep, err := audit.VerifyExport(bytes.NewReader(doc), f.signer.VerifierKey())
			if err != nil || !rep.OK {
				t.Fatalf("VerifyExport = %+v, %v\n%s", rep, err, doc)
			}
			if rep.Entries != uint64(tt.want) || rep.Verified != 11 || rep.Export == nil {
				t.Fatalf("report %+v, want %d entries against a checkpoint of 11", rep, tt.want)
			}
			if rec := rep.Export; rec.Seq != 11 || rec.Type != audit.TypeAuditExported || rec.Requester != "u_auditor" ||
				rec.Fields["format"] != "json" || rec.Fields["user"] != tt.filter.User {
				t.Fatalf("export record %+v", rec)
			}
			if !strings.Contains(rep.String(), "intact") {
				t.Fatalf("report reads %q", rep)
			}
			// The entries are the stored bytes, untouched by HTML escaping.
			if tt.want > 1 && !bytes.Contains(doc, []byte(`"message":"password accepted <ok> & more"`)) {
				t.Fatalf("entries re-encoded:\n%s", doc)
			}
			// The log itself stays intact and now holds the export.
			if rep, err := f.log.Verify(context.Background()); err != nil || !rep.OK || rep.Entries != 11 {
				t.Fatalf("log after export: %+v %v", rep, err)
			}
		})
	}
}

func TestJSONExportStillVerifiesWhenReformatted(t *testing.T) {
	f := exportFixture(t)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, export(t, f, audit.Filter{}, "json"), "", "  "); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.VerifyExport(&pretty, f.signer.VerifierKey()); err != nil || !rep.OK {
		t.Fatalf("indented export: %+v, %v", rep, err)
	}
}

func TestTamperedJSONExportIsRefusedOffline(t *testing.T) {
	f := exportFixture(t)
	doc := string(export(t, f, audit.Filter{User: "u_alice"}, "json"))
	firstProof := regexp.MustCompile(`"proof":\["([A-Za-z0-9+/]{5})`)
	tests := []struct {
		name   string
		tamper func(string) string
		kind   audit.Kind
	}{
		{"entry edited", func(s string) string { return strings.Replace(s, `"outcome":"success"`, `"outcome":"failure"`, 2) }, audit.KindAltered},
		{"entry renumbered", func(s string) string { return strings.Replace(s, `"entry":{"seq":1,`, `"entry":{"seq":2,`, 1) }, audit.KindAltered},
		{"proof edited", func(s string) string {
			m := firstProof.FindStringSubmatchIndex(s)
			c := "A"
			if s[m[2]] == 'A' {
				c = "B"
			}
			return s[:m[2]] + c + s[m[2]+1:]
		}, audit.KindAltered},
		{"proof dropped", func(s string) string {
			return regexp.MustCompile(`"proof":\[[^\]]*\]`).ReplaceAllString(s, `"proof":[]`)
		}, audit.KindAltered},
		{"checkpoint size edited", func(s string) string { return strings.Replace(s, `\n11\n`, `\n12\n`, 1) }, audit.KindCheckpoint},
		{"checkpoint root edited", func(s string) string {
			i := strings.Index(s, `\n11\n`) + len(`\n11\n`)
			c := "A"
			if s[i] == 'A' {
				c = "B"
			}
			return s[:i] + c + s[i+1:]
		}, audit.KindCheckpoint},
		{"export record edited", func(s string) string {
			return strings.Replace(s, `"requester":"u_auditor"`, `"requester":"u_nobody"`, 1)
		}, audit.KindAltered},
		{"entries reordered", func(s string) string {
			items := regexp.MustCompile(`\{"entry":\{"seq":\d+,[^{}]*\{[^{}]*\}[^{}]*\}[^{}]*\}`).FindAllString(s, -1)
			// items[0] is the record; swap the first two listed entries.
			i, j := strings.Index(s, items[1]), strings.Index(s, items[2])
			return s[:i] + items[2] + s[i+len(items[1]):j] + items[1] + s[j+len(items[2]):]
		}, audit.KindReordered},
		{"entry removed between neighbours", func(s string) string {
			// Entries 3 and 4 (alice) are consecutive in the log and the
			// export; without entry 3, entry 4's link is unproven.
			items := regexp.MustCompile(`\{"entry":\{"seq":\d+,[^{}]*\{[^{}]*\}[^{}]*\}[^{}]*\}`).FindAllString(s, -1)
			if !strings.HasPrefix(items[2], `{"entry":{"seq":3,`) {
				t.Fatalf("third item is %s", items[2])
			}
			return strings.Replace(s, items[2]+",", "", 1)
		}, audit.KindRemoved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.tamper(doc)
			if bad == doc {
				t.Fatal("tampering changed nothing")
			}
			rep, err := audit.VerifyExport(strings.NewReader(bad), f.signer.VerifierKey())
			if err != nil {
				t.Fatalf("VerifyExport error %v, want a report", err)
			}
			if rep.OK || rep.Kind != tt.kind || !strings.HasPrefix(rep.String(), "audit export NOT intact: ") {
				t.Fatalf("report %+v (%s), want kind %s", rep, rep, tt.kind)
			}
		})
	}
	if rep, err := audit.VerifyExport(strings.NewReader(doc), newSigner(t, origin).VerifierKey()); err != nil || rep.OK {
		t.Fatalf("export verified with another log's key: %+v %v", rep, err)
	}
}

func TestUnreadableExportIsAnError(t *testing.T) {
	f := exportFixture(t)
	doc := string(export(t, f, audit.Filter{}, "json"))
	for name, bad := range map[string]string{
		"truncated":      doc[:len(doc)/2],
		"trailing data":  doc + "{}",
		"unknown field":  strings.Replace(doc, `"format"`, `"extra":1,"format"`, 1),
		"other format":   strings.Replace(doc, `openconsult-audit-export/2`, `openconsult-audit-export/1`, 1),
		"no record":      regexp.MustCompile(`"record":\{"entry":.*?\]\},`).ReplaceAllString(doc, ""),
		"not even JSON":  "seq,time\n1,2\n",
		"empty document": "",
	} {
		if rep, err := audit.VerifyExport(strings.NewReader(bad), f.signer.VerifierKey()); err == nil {
			t.Errorf("%s: no error, report %+v", name, rep)
		}
	}
}

func TestExportIsRecordedBeforeAnyOutput(t *testing.T) {
	f := exportFixture(t)
	for _, format := range []string{"json", "csv"} {
		w := &firstWrite{check: func() bool {
			return strings.Contains(string(f.store.rows[len(f.store.rows)-1].Canonical), `"type":"audit.exported"`)
		}}
		if err := f.log.Export(context.Background(), w, audit.Filter{}, format, "u_auditor"); !errors.Is(err, errFull) {
			t.Fatalf("%s: export into a failing writer = %v", format, err)
		}
		if !w.recorded {
			t.Fatalf("%s: output written before the export was recorded", format)
		}
	}
	before := len(f.store.rows)
	if err := f.log.Export(context.Background(), io.Discard, audit.Filter{}, "xml", "u_auditor"); err == nil {
		t.Fatal("xml export accepted")
	}
	if err := f.log.Export(context.Background(), io.Discard, audit.Filter{}, "csv", ""); err == nil {
		t.Fatal("export without a requester accepted")
	}
	if len(f.store.rows) != before {
		t.Fatal("a refused export was recorded")
	}
}

var errFull = errors.New("disk full")

type firstWrite struct {
	check    func() bool
	recorded bool
}

func (w *firstWrite) Write([]byte) (int, error) {
	w.recorded = w.check()
	return 0, errFull
}

func TestCSVExportQuotesAndGuardsAgainstFormulas(t *testing.T) {
	f := newFixture(t)
	f.append(t, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Failure, Requester: "@u_x", Message: `=HYPERLINK("http://evil","click")`,
		SourceIP: "-1+2", UserAgent: "+cmd|' /C calc'!A0", Room: "\tc", Fields: map[string]string{"note": "a,b\nc"}})
	f.append(t, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: "u_y", Message: "plain"})
	out := export(t, f, audit.Filter{}, "csv")
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, out)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != "seq,time,type,outcome,requester,room,message,source_ip,user_agent,fields,prev_hash" {
		t.Fatalf("csv:\n%s", out)
	}
	row := recs[1]
	want := map[int]string{0: "1", 2: "signin", 3: "failure", 4: "'@u_x", 5: "'\tc", 6: `'=HYPERLINK("http://evil","click")`,
		7: "'-1+2", 8: "'+cmd|' /C calc'!A0", 9: `{"note":"a,b\nc"}`, 10: ""}
	for col, w := range want {
		if row[col] != w {
			t.Errorf("column %s = %q, want %q", recs[0][col], row[col], w)
		}
	}
	if recs[2][6] != "plain" || recs[3][2] != audit.TypeAuditExported {
		t.Fatalf("rows %q", recs[2:])
	}
	for _, r := range recs[1:] {
		for _, cell := range r {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("unguarded cell %q", cell)
			}
		}
	}
}

func FuzzVerifyExport(f *testing.F) {
	fx := newFixture(f)
	for range 5 {
		fx.append(f, audit.Entry{})
	}
	var doc bytes.Buffer
	if err := fx.log.Export(context.Background(), &doc, audit.Filter{}, "json", "u_auditor"); err != nil {
		f.Fatal(err)
	}
	f.Add(doc.Bytes())
	f.Add([]byte(`{"format":"openconsult-audit-export/2","checkpoint":"x","record":{"entry":{},"proof":[]},"entries":[]}`))
	f.Add([]byte(`{"format":"openconsult-audit-export/2","checkpoint":"` + origin + `\n1\nAAAA\n\n— ` + origin + ` x\n"}`))
	key := fx.signer.VerifierKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := audit.VerifyExport(bytes.NewReader(b), key)
		if err != nil || !rep.OK {
			return
		}
		// Whatever verifies has a record of the export and entries that
		// each verify alone: nothing verifies without the signing key's
		// checkpoint, and the fuzzer has only the one export it was given.
		if rep.Export == nil || rep.Export.Type != audit.TypeAuditExported || rep.Verified == 0 {
			t.Fatalf("verified export without its record: %+v", rep)
		}
	})
}
