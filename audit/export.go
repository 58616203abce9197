package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
)

// Filter selects entries for an export or a listing.
type Filter struct {
	Since, Until time.Time // zero means unbounded
	User         string    // requester, or the subject of an admin action
	Type         string    // entry type, or its prefix ending in "." ("session.")
	Room         string    // consult id
}

func (f Filter) match(e Entry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) || !f.Until.IsZero() && !e.Time.Before(f.Until) {
		return false
	}
	if f.Type != "" && e.Type != f.Type && !(strings.HasSuffix(f.Type, ".") && strings.HasPrefix(e.Type, f.Type)) {
		return false
	}
	if f.Room != "" && e.Room != f.Room {
		return false
	}
	return f.User == "" || e.Requester == f.User || e.Fields["user"] == f.User
}

const exportFormat = "openconsult-audit-export-v1"

// exportDoc is a self-contained export: a signed checkpoint, and each
// selected entry with its inclusion proof against it.
type exportDoc struct {
	Format     string        `json:"format"`
	Checkpoint string        `json:"checkpoint"`
	Entries    []exportEntry `json:"entries"`
}

type exportEntry struct {
	Entry json.RawMessage `json:"entry"`
	Proof []string        `json:"inclusion_proof"`
}

// Export writes the entries matching f as "json" (verifiable offline) or
// "csv" (for people). The export itself is recorded first, by requester, so
// the export contains its own record and a fresh checkpoint covers both.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter, format, requester string) error {
	if format != "json" && format != "csv" {
		return fmt.Errorf("export format %q: want json or csv", format)
	}
	fields := map[string]string{"format": format}
	if f.User != "" {
		fields["user"] = f.User
	}
	if !f.Since.IsZero() {
		fields["since"] = f.Since.UTC().Format(time.RFC3339)
	}
	if !f.Until.IsZero() {
		fields["until"] = f.Until.UTC().Format(time.RFC3339)
	}
	if f.Type != "" {
		fields["type"] = f.Type
	}
	if f.Room != "" {
		fields["room"] = f.Room
	}
	if _, err := l.Append(ctx, Entry{Type: TypeAuditExported, Outcome: Success, Requester: requester, Message: "audit log exported", Fields: fields}); err != nil {
		return err
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		return err
	}
	stored, err := l.storage.AuditCheckpoints(ctx)
	if err != nil || len(stored) == 0 {
		return fmt.Errorf("export checkpoint: %w", err)
	}
	cp := stored[len(stored)-1]
	var leaves [][]byte
	var picked []Row
	err = l.storage.AuditRows(ctx, 1, func(r Row) error {
		if r.Seq > cp.Size {
			return errStop
		}
		leaves = append(leaves, r.LeafHash)
		var e Entry
		if err := json.Unmarshal(r.Canonical, &e); err != nil {
			return err
		}
		if f.match(e) {
			picked = append(picked, r)
		}
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	if format == "csv" {
		return writeCSV(w, picked)
	}
	doc := exportDoc{Format: exportFormat, Checkpoint: string(cp.Note), Entries: make([]exportEntry, 0, len(picked))}
	for _, r := range picked {
		path := inclusionPath(int(r.Seq-1), leaves)
		p := make([]string, len(path))
		for i, h := range path {
			p[i] = base64.StdEncoding.EncodeToString(h)
		}
		doc.Entries = append(doc.Entries, exportEntry{Entry: r.Canonical, Proof: p})
	}
	// No indentation: it would re-format the canonical entries.
	return json.NewEncoder(w).Encode(doc)
}

// MaxExportBytes bounds what VerifyExport reads.
const MaxExportBytes = 1 << 30

// VerifyExport checks an export offline: the checkpoint's signature with
// vkey, that every entry is canonical, and its inclusion proof against the
// checkpoint's root.
func VerifyExport(r io.Reader, vkey string) (Report, error) {
	var doc exportDoc
	dec := json.NewDecoder(io.LimitReader(r, MaxExportBytes))
	if err := dec.Decode(&doc); err != nil {
		return Report{}, fmt.Errorf("export: not an export document: %w", err)
	}
	if doc.Format != exportFormat {
		return Report{}, fmt.Errorf("export: unknown format %q", doc.Format)
	}
	cp, err := OpenCheckpoint([]byte(doc.Checkpoint), vkey)
	if err != nil {
		return Report{Problem: "the export's checkpoint does not verify: " + err.Error()}, nil
	}
	rep := Report{Checkpoints: 1, Verified: cp.Size}
	var last uint64
	for _, x := range doc.Entries {
		var e Entry
		if err := json.Unmarshal(x.Entry, &e); err != nil || !bytes.Equal(e.Canonical(), x.Entry) {
			rep.FirstBad, rep.Problem = e.Seq, fmt.Sprintf("entry %d is not canonical (altered)", e.Seq)
			return rep, nil
		}
		if e.Seq == 0 || e.Seq > cp.Size || e.Seq <= last {
			rep.FirstBad, rep.Problem = e.Seq, fmt.Sprintf("entry %d is outside the checkpoint or out of order", e.Seq)
			return rep, nil
		}
		last = e.Seq
		path := make([][]byte, len(x.Proof))
		for i, p := range x.Proof {
			if path[i], err = base64.StdEncoding.DecodeString(p); err != nil {
				rep.FirstBad, rep.Problem = e.Seq, fmt.Sprintf("entry %d has a malformed proof", e.Seq)
				return rep, nil
			}
		}
		if err := proof.VerifyInclusion(hasher, e.Seq-1, cp.Size, LeafHash(x.Entry), path, cp.Root); err != nil {
			rep.FirstBad, rep.Problem = e.Seq, fmt.Sprintf("entry %d is not in the signed log (altered): %v", e.Seq, err)
			return rep, nil
		}
		rep.Entries++
	}
	rep.OK = true
	return rep, nil
}

// writeCSV writes entries for spreadsheets, neutralising cells that a
// spreadsheet would run as a formula.
func writeCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"seq", "time", "type", "outcome", "requester", "room", "message", "source_ip", "user_agent", "fields"})
	for _, r := range rows {
		var e Entry
		if err := json.Unmarshal(r.Canonical, &e); err != nil {
			return err
		}
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var fields []string
		for _, k := range keys {
			fields = append(fields, k+"="+e.Fields[k])
		}
		rec := []string{fmt.Sprint(e.Seq), e.Time.UTC().Format(time.RFC3339Nano), e.Type, e.Outcome, e.Requester, e.Room,
			e.Message, e.SourceIP, e.UserAgent, strings.Join(fields, "; ")}
		for i := range rec {
			rec[i] = safeCell(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
