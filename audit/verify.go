package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind classifies what a verification found wrong.
type Kind string

// Kinds of findings.
const (
	KindAltered    Kind = "altered"    // an entry's content changed
	KindInserted   Kind = "inserted"   // an entry that was never appended
	KindRemoved    Kind = "removed"    // an appended entry is gone
	KindReordered  Kind = "reordered"  // entries are out of their order
	KindCheckpoint Kind = "checkpoint" // a checkpoint is not signed with the key
)

// Report is the outcome of a verification.
type Report struct {
	OK          bool
	Entries     uint64 // entries verified
	Checkpoints int    // signed checkpoints verified
	Verified    uint64 // tree size of the latest checkpoint verified
	// External is the size of the newest checkpoint kept outside the
	// database that was verified, and ExternalFrom where it was found.
	External     uint64
	ExternalFrom string
	FirstBad     uint64 // first entry found wrong; 0 when none can be named
	Kind         Kind   // what is wrong, when not OK
	Problem      string // what is wrong, for a person
	// Export is, for a verified export, its own audit.exported entry: who
	// exported it, when, and with which filter.
	Export *Entry

	ofExport bool // the report is VerifyExport's
}

func (r Report) String() string {
	if !r.OK && r.ofExport {
		return "audit export NOT intact: " + r.Problem
	}
	if !r.OK {
		return "audit log NOT intact: " + r.Problem
	}
	if r.Export != nil {
		s := fmt.Sprintf("audit export intact: %d entries, each proven against a signed checkpoint of %d entries; exported by %s at %s (entry %d)",
			r.Entries, r.Verified, r.Export.Requester, r.Export.Time.Format(time.RFC3339), r.Export.Seq)
		if r.ExternalFrom != "" {
			s += "; the same checkpoint is in " + r.ExternalFrom
		}
		return s
	}
	s := fmt.Sprintf("audit log intact: %d entries, %d signed checkpoints, latest covers %d entries", r.Entries, r.Checkpoints, r.Verified)
	if r.ExternalFrom != "" {
		s += fmt.Sprintf("; the newest external checkpoint (%s) covers %d entries", r.ExternalFrom, r.External)
	}
	if r.Entries > r.Verified {
		s += fmt.Sprintf("; the newest %d are not yet covered by a signed checkpoint", r.Entries-r.Verified)
	}
	return s
}

// errStop ends a storage scan early once a finding is made.
var errStop = errors.New("audit: verification stopped")

// checkpointPage is how many stored checkpoints verification holds at once.
const checkpointPage = 500

// Verify checks the stored log with vkey, the auditor's copy of the
// verifier key: every entry's canonical encoding, number, leaf hash, link
// to its predecessor and time order, and every stored checkpoint's
// signature and root against the tree rebuilt from the entries. The first
// entry found wrong is named in the report. An error means the check
// could not run (storage unreadable, bad key), not that the log is bad.
//
// The checkpoints in external, kept outside the database (the checkpoint
// file, syslog, a witness), are checked the same way, so that removing the
// newest entries, or rewriting the chain and the stored checkpoints with
// it, is found too: the log must reach each of them with the same root.
//
// Entries newer than the latest checkpoint are protected by the chain
// alone until the next checkpoint is signed; the report says how many.
func Verify(ctx context.Context, src Source, vkey string, external ...ExternalCheckpoint) (Report, error) {
	v := &verification{ctx: ctx, src: src, vkey: vkey, tree: newRunningTree()}
	if _, err := newVerifier(vkey); err != nil {
		return Report{}, err
	}
	if err := v.externals(external); err != nil {
		return v.result(err)
	}
	if err := v.checkpoints(); err != nil {
		return v.result(err)
	}
	// Each row is checked once the row after it is read, because telling
	// an altered entry from a moved one needs its successor.
	var held *row
	err := src.AuditRows(ctx, 0, func(r Row) error {
		next := parseRow(r)
		if held != nil {
			if err := v.check(held, next); err != nil {
				return err
			}
		}
		held = next
		return nil
	})
	if err == nil && held != nil {
		err = v.check(held, nil)
	}
	if err == nil && v.next != nil {
		// A checkpoint is signed for more entries than are stored.
		err = v.bad(v.rep.Entries+1, KindRemoved, "the log ends at entry %d but a signed checkpoint covers %d entries: entries %d to %d were removed",
			v.rep.Entries, v.next.Size, v.rep.Entries+1, v.next.Size)
	}
	if err == nil && len(v.ext) > 0 {
		x := v.ext[0]
		err = v.bad(v.rep.Entries+1, KindRemoved, "the log ends at entry %d but the checkpoint in %s covers %d entries: entries %d to %d were removed",
			v.rep.Entries, x.from, x.Size, v.rep.Entries+1, x.Size)
	}
	return v.result(err)
}

// row is a stored row with what checking it needs.
type row struct {
	Row
	entry Entry
	err   error  // from ParseEntry
	leaf  []byte // recomputed
}

func parseRow(r Row) *row {
	e, err := ParseEntry(r.Canonical)
	return &row{Row: r, entry: e, err: err, leaf: LeafHash(r.Canonical)}
}

type verification struct {
	ctx  context.Context
	src  Source
	vkey string
	rep  Report
	tree *runningTree
	prev *row // last entry accepted

	page  []Checkpoint // verified checkpoints not yet reached
	next  *Checkpoint  // the first of page, nil when none is left
	after uint64       // size of the last checkpoint fetched
	done  bool         // every checkpoint fetched

	ext []external // external checkpoints not yet reached, by size
}

// external is a verified checkpoint kept outside the database.
type external struct {
	Checkpoint
	from string
}

// externals verifies the external checkpoints and queues them by size.
func (v *verification) externals(in []ExternalCheckpoint) error {
	for _, e := range in {
		cp, err := OpenCheckpoint(e.Note, v.vkey)
		if err != nil {
			return v.bad(0, KindCheckpoint, "the checkpoint in %s is not valid: %v (forged, or signed with another key)", e.Source, err)
		}
		v.ext = append(v.ext, external{cp, e.Source})
	}
	slices.SortStableFunc(v.ext, func(a, b external) int { return cmp.Compare(a.Size, b.Size) })
	return nil
}

// reachedExternal compares the external checkpoints of the size the
// verified entries have just reached with the rebuilt tree.
func (v *verification) reachedExternal() error {
	for len(v.ext) > 0 && v.ext[0].Size == v.rep.Entries {
		x := v.ext[0]
		if !bytes.Equal(x.Root, v.tree.root()) {
			from := min(v.rep.Verified+1, v.rep.Entries)
			return v.bad(from, KindAltered, "entries %d to %d do not match the checkpoint of %d entries in %s: one of them was altered, or the log was rewritten from there",
				from, v.rep.Entries, x.Size, x.from)
		}
		v.rep.External, v.rep.ExternalFrom = x.Size, x.from
		v.rep.Verified = max(v.rep.Verified, x.Size)
		v.rep.Checkpoints++
		v.ext = v.ext[1:]
	}
	return nil
}

func (v *verification) result(err error) (Report, error) {
	switch {
	case err == nil:
		v.rep.OK = true
		return v.rep, nil
	case errors.Is(err, errStop):
		return v.rep, nil
	default:
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
}

func (v *verification) bad(seq uint64, kind Kind, format string, args ...any) error {
	v.rep.FirstBad, v.rep.Kind, v.rep.Problem = seq, kind, fmt.Sprintf(format, args...)
	return errStop
}

// checkpoints moves v.next to the next stored checkpoint, fetching and
// verifying a page of them when needed.
func (v *verification) checkpoints() error {
	if len(v.page) > 0 {
		v.page = v.page[1:]
	}
	if len(v.page) == 0 && !v.done {
		stored, err := v.src.AuditCheckpoints(v.ctx, v.after, checkpointPage)
		if err != nil {
			return err
		}
		v.done = len(stored) < checkpointPage
		for _, sc := range stored {
			if sc.Size <= v.after {
				return fmt.Errorf("storage returned checkpoint %d after %d", sc.Size, v.after)
			}
			cp, err := OpenCheckpoint(sc.Note, v.vkey)
			if err != nil {
				return v.bad(0, KindCheckpoint, "the checkpoint stored for %d entries is not valid: %v (forged, or signed with another key)", sc.Size, err)
			}
			if cp.Size != sc.Size {
				return v.bad(0, KindCheckpoint, "the checkpoint stored for %d entries states %d entries (altered)", sc.Size, cp.Size)
			}
			v.page = append(v.page, cp)
			v.after = sc.Size
		}
	}
	v.next = nil
	if len(v.page) > 0 {
		v.next = &v.page[0]
	}
	return nil
}

// reached compares the checkpoint in v.next, whose size the verified
// entries have just reached, with the rebuilt tree.
func (v *verification) reached() error {
	if !bytes.Equal(v.next.Root, v.tree.root()) {
		from := v.rep.Verified + 1
		if from > v.rep.Entries {
			from = v.rep.Entries
		}
		return v.bad(from, KindAltered, "entries %d to %d do not match the signed checkpoint of %d entries: one of them was altered, or the log was rewritten from there",
			from, v.rep.Entries, v.next.Size)
	}
	v.rep.Verified = v.next.Size
	v.rep.Checkpoints++
	return v.checkpoints()
}

// check verifies cur, the entry expected next; next is the row after it
// (nil at the end of the log).
func (v *verification) check(cur, next *row) error {
	want := v.rep.Entries + 1
	switch {
	case cur.Seq == 0:
		return v.bad(1, KindInserted, "entry 1 is preceded by an inserted row numbered 0")
	case cur.Seq < want:
		return v.bad(cur.Seq, KindInserted, "entry %d is stored twice (inserted)", cur.Seq)
	case cur.Seq > want && want == 1:
		return v.bad(1, KindRemoved, "entries 1 to %d are missing: the log starts at entry %d (removed)", cur.Seq-1, cur.Seq)
	case cur.Seq > want:
		return v.bad(want, KindRemoved, "entry %d is missing: the log goes from entry %d to entry %d (removed)", want, want-1, cur.Seq)
	}
	if cur.err != nil {
		return v.bad(cur.Seq, KindAltered, "entry %d was altered: it is no longer a canonical entry", cur.Seq)
	}
	e := cur.entry
	switch {
	case e.Seq < cur.Seq:
		return v.claimsEarlier(cur)
	case e.Seq > cur.Seq && next != nil && next.err == nil && next.entry.Seq == cur.Seq:
		return v.bad(cur.Seq, KindReordered, "entries %d and %d were swapped (reordered)", cur.Seq, e.Seq)
	case e.Seq > cur.Seq:
		return v.bad(cur.Seq, KindRemoved, "entry %d is missing: the entry stored in its place is entry %d (removed, or reordered)", cur.Seq, e.Seq)
	}
	if !bytes.Equal(cur.leaf, cur.LeafHash) {
		return v.bad(cur.Seq, KindAltered, "entry %d was altered: its content no longer matches its recorded hash", cur.Seq)
	}
	if err := v.checkLink(cur, next); err != nil {
		return err
	}
	if v.prev != nil && e.Time.Before(v.prev.entry.Time) {
		return v.bad(cur.Seq, KindAltered, "entry %d was altered: it is dated before entry %d", cur.Seq, v.prev.Seq)
	}
	v.tree.append(cur.leaf)
	v.prev = cur
	v.rep.Entries++
	if v.next != nil && v.next.Size == v.rep.Entries {
		if err := v.reached(); err != nil {
			return err
		}
	}
	return v.reachedExternal()
}

// checkLink checks that cur names its predecessor's hash. When it does
// not, either the predecessor was altered (and its stored hash recomputed)
// or cur itself was altered or moved; in the second case cur's successor
// does not name cur's hash either.
func (v *verification) checkLink(cur, next *row) error {
	wantPrev := ""
	if v.prev != nil {
		wantPrev = hex.EncodeToString(v.prev.leaf)
	}
	if cur.entry.Prev == wantPrev {
		return nil
	}
	if v.prev == nil {
		return v.bad(1, KindRemoved, "entry 1 names a predecessor: entries before it were removed")
	}
	if next != nil && next.err == nil && next.Seq == cur.Seq+1 && next.entry.Prev != hex.EncodeToString(cur.leaf) {
		return v.bad(cur.Seq, KindAltered, "entry %d was altered or moved: it links to neither entry %d nor entry %d", cur.Seq, v.prev.Seq, next.Seq)
	}
	return v.bad(v.prev.Seq, KindAltered, "entry %d was altered: entry %d recorded a different hash for it", v.prev.Seq, cur.Seq)
}

// claimsEarlier handles an entry stored as cur.Seq whose content says it is
// an earlier entry: either a copy of that entry was added here, or entries
// were inserted before it and the rest renumbered, so that the entry
// stored under its own number is now a different one.
func (v *verification) claimsEarlier(cur *row) error {
	claimed := cur.entry.Seq
	if claimed == 0 {
		return v.bad(cur.Seq, KindAltered, "entry %d was altered: it claims number 0", cur.Seq)
	}
	var there []byte
	err := v.src.AuditRows(v.ctx, claimed, func(r Row) error {
		if r.Seq == claimed {
			there = r.Canonical
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if bytes.Equal(there, cur.Canonical) {
		return v.bad(cur.Seq, KindInserted, "entry %d was inserted: it is a copy of entry %d", cur.Seq, claimed)
	}
	return v.bad(claimed, KindInserted, "entry %d was inserted: the entry stored as %d is the original entry %d, so the entries from %d on were renumbered",
		claimed, cur.Seq, claimed, claimed)
}
