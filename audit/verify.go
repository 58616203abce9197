package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Report is the outcome of a verification.
type Report struct {
	Entries     uint64 // entries read
	Checkpoints int    // signed checkpoints verified
	Verified    uint64 // size of the latest checkpoint the log matches
	OK          bool
	FirstBad    uint64 // sequence number of the first entry found wrong
	Problem     string // what is wrong, for a person
}

func (r Report) String() string {
	if r.OK {
		return fmt.Sprintf("audit log intact: %d entries, %d signed checkpoints, latest covers %d entries", r.Entries, r.Checkpoints, r.Verified)
	}
	return "audit log NOT intact: " + r.Problem
}

// Verify checks the whole stored log against its signed checkpoints, with
// vkey the auditor's copy of the public key.
func Verify(ctx context.Context, s Storage, vkey string) (Report, error) {
	stored, err := s.AuditCheckpoints(ctx)
	if err != nil {
		return Report{}, err
	}
	var cps []Checkpoint
	for _, sc := range stored {
		cp, err := OpenCheckpoint(sc.Note, vkey)
		if err != nil {
			return Report{Problem: fmt.Sprintf("the checkpoint stored for %d entries does not verify: %v", sc.Size, err)}, nil
		}
		cps = append(cps, cp)
	}
	rep := Report{Checkpoints: len(cps)}
	t := newTree()
	var prevLeaf []byte
	next := 0 // index of the next checkpoint to compare
	bad := func(seq uint64, format string, args ...any) error {
		rep.FirstBad, rep.Problem = seq, fmt.Sprintf(format, args...)
		return errStop
	}
	err = s.AuditRows(ctx, 1, func(r Row) error {
		want := rep.Entries + 1
		if r.Seq != want {
			if r.Seq > want {
				return bad(want, "entry %d is missing: the log goes from %d to %d (removed)", want, want-1, r.Seq)
			}
			return bad(r.Seq, "entry %d appears out of order after %d (inserted or reordered)", r.Seq, want-1)
		}
		leaf := LeafHash(r.Canonical)
		var e Entry
		if err := json.Unmarshal(r.Canonical, &e); err != nil || !bytes.Equal(e.Canonical(), r.Canonical) {
			return bad(r.Seq, "entry %d is not a canonical entry (altered)", r.Seq)
		}
		if e.Seq < r.Seq {
			return bad(e.Seq, "entry %d was inserted: the entry stored after it also claims number %d", e.Seq, e.Seq)
		}
		if e.Seq != r.Seq {
			return bad(r.Seq, "entry stored as %d says it is %d (reordered or altered)", r.Seq, e.Seq)
		}
		if !bytes.Equal(leaf, r.LeafHash) {
			return bad(r.Seq, "entry %d was altered: its content no longer matches its recorded hash", r.Seq)
		}
		if want > 1 && e.Prev != hex.EncodeToString(prevLeaf) {
			return bad(want-1, "entry %d was altered or replaced: entry %d recorded a different predecessor", want-1, want)
		}
		if want == 1 && e.Prev != "" {
			return bad(1, "entry 1 claims a predecessor (entries before it were removed)")
		}
		t.append(leaf)
		prevLeaf = leaf
		rep.Entries++
		for next < len(cps) && cps[next].Size == rep.Entries {
			if !bytes.Equal(cps[next].Root, t.root()) {
				from := uint64(1)
				if next > 0 {
					from = cps[next-1].Size + 1
				}
				return bad(from, "entries %d to %d differ from the signed checkpoint of %d entries (rewritten)", from, rep.Entries, rep.Entries)
			}
			rep.Verified = cps[next].Size
			next++
		}
		return nil
	})
	if err != nil && err != errStop {
		return Report{}, err
	}
	if rep.Problem != "" {
		return rep, nil
	}
	if next < len(cps) {
		last := cps[len(cps)-1]
		return Report{Entries: rep.Entries, Checkpoints: rep.Checkpoints, Verified: rep.Verified, FirstBad: rep.Entries + 1,
			Problem: fmt.Sprintf("the log has %d entries but a signed checkpoint covers %d: entries %d to %d were removed", rep.Entries, last.Size, rep.Entries+1, last.Size)}, nil
	}
	rep.OK = true
	return rep, nil
}

type stopError struct{}

func (stopError) Error() string { return "stop" }

var errStop error = stopError{}
