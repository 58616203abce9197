package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Filter selects entries for an export or a listing. Zero fields select
// everything.
type Filter struct {
	Since, Until time.Time // from Since (inclusive) to Until (exclusive)
	User         string    // requester, or the subject of an admin action (field "user")
	Type         string    // entry type, or a prefix ending in "." ("session.")
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

// fields records the filter in the export's own audit entry.
func (f Filter) fields(format string) map[string]string {
	m := map[string]string{"format": format}
	for k, v := range map[string]string{"user": f.User, "type": f.Type, "room": f.Room} {
		if v != "" {
			m[k] = v
		}
	}
	if !f.Since.IsZero() {
		m["since"] = f.Since.UTC().Format(time.RFC3339Nano)
	}
	if !f.Until.IsZero() {
		m["until"] = f.Until.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// exportFormat names the JSON export layout; VerifyExport reads only it.
const exportFormat = "openconsult-audit-export/2"

// Export writes the entries matching f, as "json" (a self-contained
// document an auditor verifies offline with VerifyExport) or "csv" (for
// people and spreadsheets). The export is first recorded in the log as an
// audit.exported entry by requester, with the filter in its fields, and
// nothing is written unless that succeeds.
//
// The JSON document holds a freshly signed checkpoint, the export's own
// entry, and each selected entry exactly as stored with its inclusion
// proof; an entry whose predecessor is not in the document also carries
// the proof that its link names a leaf of the log. A CSV export signs a
// checkpoint too, before it is written. The selection covers
// the log up to the export's own entry (CSV) or the checkpoint (JSON).
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter, format, requester string) error {
	if format != "json" && format != "csv" {
		return fmt.Errorf("audit export: format %q, want json or csv", format)
	}
	if requester == "" {
		return errors.New("audit export: no requester to record")
	}
	rec, err := l.Append(ctx, Entry{Type: TypeAuditExported, Outcome: Success, Requester: requester,
		Message: "audit log exported", Fields: f.fields(format)})
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if format == "csv" {
		// A CSV carries no proof, but the log it was taken from is
		// checkpointed all the same, as for every export.
		l.treeMu.Lock()
		_, _, err := l.checkpointLocked(ctx)
		l.treeMu.Unlock()
		if err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		return l.writeCSV(ctx, w, f, rec.Seq)
	}
	return l.writeJSON(ctx, w, f, rec)
}

func (l *Log) writeJSON(ctx context.Context, w io.Writer, f Filter, rec Entry) error {
	l.treeMu.Lock()
	cp, signed, err := l.checkpointLocked(ctx)
	l.treeMu.Unlock()
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	// First pass: the leaves, to build the proofs. Leaves are recomputed;
	// the root must be the one just signed.
	leaves := make([][32]byte, 0, cp.Size)
	err = l.storage.AuditRows(ctx, 1, func(r Row) error {
		if r.Seq > cp.Size {
			return errStop
		}
		if r.Seq != uint64(len(leaves))+1 {
			return fmt.Errorf("%w: entry %d missing", ErrInconsistent, len(leaves)+1)
		}
		leaves = append(leaves, [32]byte(LeafHash(r.Canonical)))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit export: read entries: %w", err)
	}
	tree := newDenseTree(leaves)
	if tree.size() != cp.Size || !bytes.Equal(tree.root(), cp.Root) {
		return fmt.Errorf("audit export: %w: the stored entries changed while exporting", ErrInconsistent)
	}
	recCanon, err := rec.Canonical()
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}

	bw := bufio.NewWriter(w)
	note, err := json.Marshal(string(signed))
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	bw.WriteString(`{"format":"` + exportFormat + `","checkpoint":`)
	bw.Write(note)
	bw.WriteString(`,"record":`)
	if err := writeItem(bw, tree, rec.Seq, recCanon, false); err != nil {
		return err
	}
	bw.WriteString(`,"entries":[`)
	// Second pass: the selected entries, streamed.
	var last uint64
	err = l.storage.AuditRows(ctx, 1, func(r Row) error {
		if r.Seq > cp.Size {
			return errStop
		}
		if !bytes.Equal(LeafHash(r.Canonical), leaves[r.Seq-1][:]) {
			return fmt.Errorf("%w: entry %d changed while exporting", ErrInconsistent, r.Seq)
		}
		e, err := ParseEntry(r.Canonical)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrInconsistent, r.Seq, err)
		}
		if !f.match(e) {
			return nil
		}
		if last > 0 {
			bw.WriteByte(',')
		}
		err = writeItem(bw, tree, r.Seq, r.Canonical, last > 0 && last == r.Seq-1)
		last = r.Seq
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit export: %w", err)
	}
	bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit export: write: %w", err)
	}
	return nil
}

// writeItem writes {"entry":<canonical>,"proof":[...],"prev_proof":[...]}.
// The canonical bytes go out untouched: encoding/json would escape <, >
// and & in them and so change what was hashed.
func writeItem(w *bufio.Writer, tree *denseTree, seq uint64, canonical []byte, prevInDoc bool) error {
	path, err := tree.inclusion(seq - 1)
	if err != nil {
		return fmt.Errorf("audit export: proof of entry %d: %w", seq, err)
	}
	w.WriteString(`{"entry":`)
	w.Write(canonical)
	w.WriteString(`,"proof":`)
	writeHashes(w, path)
	if seq > 1 && !prevInDoc {
		prev, err := tree.inclusion(seq - 2)
		if err != nil {
			return fmt.Errorf("audit export: proof of entry %d: %w", seq-1, err)
		}
		w.WriteString(`,"prev_proof":`)
		writeHashes(w, prev)
	}
	// bufio.Writer keeps its first write error and returns it from every
	// later call, so this reports a reader that went away mid-export.
	if err := w.WriteByte('}'); err != nil {
		return fmt.Errorf("audit export: write: %w", err)
	}
	return nil
}

func writeHashes(w *bufio.Writer, hashes [][]byte) {
	w.WriteByte('[')
	for i, h := range hashes {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(`"` + base64.StdEncoding.EncodeToString(h) + `"`)
	}
	w.WriteByte(']')
}

// csvHeader names the CSV columns.
var csvHeader = []string{"seq", "time", "type", "outcome", "requester", "room", "message", "source_ip", "user_agent", "fields", "prev_hash"}

// writeCSV writes the entries up to seq matching f for spreadsheets.
func (l *Log) writeCSV(ctx context.Context, w io.Writer, f Filter, upTo uint64) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("audit export: write: %w", err)
	}
	err := l.storage.AuditRows(ctx, 1, func(r Row) error {
		if r.Seq > upTo {
			return errStop
		}
		e, err := ParseEntry(r.Canonical)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrInconsistent, r.Seq, err)
		}
		if !f.match(e) {
			return nil
		}
		return cw.Write(csvRecord(e))
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit export: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("audit export: write: %w", err)
	}
	return nil
}

func csvRecord(e Entry) []string {
	var fields bytes.Buffer
	// Parsed entries hold valid UTF-8 only, so this cannot fail.
	_ = writeFields(&fields, e.Fields)
	rec := []string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(timeLayout), e.Type, e.Outcome, e.Requester, e.Room,
		e.Message, e.SourceIP, e.UserAgent, fields.String(), e.Prev}
	for i := range rec {
		rec[i] = safeCell(rec[i])
	}
	return rec
}

// safeCell neutralises a cell a spreadsheet would run as a formula (OWASP
// CSV injection): a leading =, +, -, @, tab or carriage return gets a
// single quote in front, which spreadsheets show as text.
func safeCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
