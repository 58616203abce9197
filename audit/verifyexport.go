package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/transparency-dev/merkle/proof"
)

// MaxExportBytes bounds what VerifyExport reads.
const MaxExportBytes = 1 << 30

// exportDoc is the JSON export as read back.
type exportDoc struct {
	Format     string       `json:"format"`
	Checkpoint string       `json:"checkpoint"`
	Record     *exportItem  `json:"record"`
	Entries    []exportItem `json:"entries"`
}

type exportItem struct {
	Entry     json.RawMessage `json:"entry"`
	Proof     []string        `json:"proof"`
	PrevProof []string        `json:"prev_proof"`
}

// VerifyExport checks a JSON export offline with vkey, the auditor's copy
// of the verifier key: the checkpoint's signature, that every entry is
// canonical (indentation added by a viewer is tolerated, any other change
// is not), in order, and proven to be the entry at its position in the
// signed log, that each entry's link names its predecessor's leaf, and
// that the export's own audit.exported entry is in the log. A document
// that cannot be read is an error; one that reads but does not verify is a
// Report that is not OK and says why.
//
// The checkpoints an auditor holds from outside the database (the
// checkpoint file, syslog, a witness) are given in the order they were
// written: the first of them at least as large as the export's checkpoint
// must be that checkpoint. A larger one means the log had more entries
// before the export than the export covers: its tail was cut (unless the
// export predates that checkpoint, which the export's own record in the
// checkpoint file settles). None as large is an error: they prove nothing
// about the export's tail.
func VerifyExport(r io.Reader, vkey string, checkpoints ...ExternalCheckpoint) (Report, error) {
	if _, err := newVerifier(vkey); err != nil {
		return Report{}, err
	}
	lr := &io.LimitedReader{R: r, N: MaxExportBytes + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var doc exportDoc
	if err := dec.Decode(&doc); err != nil {
		return Report{}, fmt.Errorf("audit export: not an export document: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Report{}, errors.New("audit export: data after the document")
	}
	if lr.N <= 0 {
		return Report{}, fmt.Errorf("audit export: larger than %d bytes", MaxExportBytes)
	}
	if doc.Format != exportFormat {
		return Report{}, fmt.Errorf("audit export: format %q, want %q", doc.Format, exportFormat)
	}
	if doc.Record == nil {
		return Report{}, errors.New("audit export: no export record")
	}
	cp, err := OpenCheckpoint([]byte(doc.Checkpoint), vkey)
	if err != nil {
		return Report{Kind: KindCheckpoint, Problem: "the export's checkpoint is not valid: " + err.Error(), ofExport: true}, nil
	}
	v := exportVerification{cp: cp, rep: Report{Checkpoints: 1, Verified: cp.Size, ofExport: true}}

	rec, ok := v.item(*doc.Record, "the export record", nil)
	if !ok {
		return v.rep, nil
	}
	if rec.entry.Type != TypeAuditExported {
		v.rep.FirstBad, v.rep.Kind = rec.entry.Seq, KindAltered
		v.rep.Problem = fmt.Sprintf("the export record, entry %d, is a %q entry, not %q", rec.entry.Seq, rec.entry.Type, TypeAuditExported)
		return v.rep, nil
	}
	var prev *verifiedItem
	for i, x := range doc.Entries {
		it, ok := v.item(x, fmt.Sprintf("entry #%d of the export", i+1), prev)
		if !ok {
			return v.rep, nil
		}
		prev = &it
		v.rep.Entries++
	}
	if len(checkpoints) > 0 {
		if ok, err := v.against(checkpoints, vkey); err != nil || !ok {
			return v.rep, err
		}
	}
	v.rep.OK = true
	v.rep.Export = &rec.entry
	return v.rep, nil
}

// against compares the export's checkpoint with the first of cps at least
// as large.
func (v *exportVerification) against(cps []ExternalCheckpoint, vkey string) (bool, error) {
	for _, c := range cps {
		if size, ok := claimedSize(c.Note); !ok || size < v.cp.Size {
			continue
		}
		cp, err := OpenCheckpoint(c.Note, vkey)
		if err != nil {
			v.rep.Kind, v.rep.Problem = KindCheckpoint, fmt.Sprintf("the checkpoint in %s is not valid: %v (forged, or signed with another key)", c.Source, err)
			return false, nil
		}
		switch {
		case cp.Size > v.cp.Size:
			v.bad(v.cp.Size+1, KindRemoved, "the export covers %d entries, but the log already had %d when the checkpoint in %s was signed: entries %d to %d are missing, the log's tail was cut before the export (unless the export is older than that checkpoint)",
				v.cp.Size, cp.Size, c.Source, v.cp.Size+1, cp.Size)
			return false, nil
		case !bytes.Equal(cp.Root, v.cp.Root):
			v.bad(0, KindAltered, "the export's checkpoint of %d entries differs from the one in %s: the log was rewritten before the export", v.cp.Size, c.Source)
			return false, nil
		}
		v.rep.External, v.rep.ExternalFrom = cp.Size, c.Source
		return true, nil
	}
	return false, fmt.Errorf("audit export: no checkpoint given covers the export's %d entries: give the checkpoint file, or a checkpoint written at or after the export", v.cp.Size)
}

type exportVerification struct {
	cp  Checkpoint
	rep Report
}

type verifiedItem struct {
	entry Entry
	leaf  []byte
}

func (v *exportVerification) bad(seq uint64, kind Kind, format string, args ...any) (verifiedItem, bool) {
	v.rep.FirstBad, v.rep.Kind, v.rep.Problem = seq, kind, fmt.Sprintf(format, args...)
	return verifiedItem{}, false
}

// item verifies one entry of the document; prev is the entry before it in
// the document (nil for the first one and for the export record).
func (v *exportVerification) item(x exportItem, name string, prev *verifiedItem) (verifiedItem, bool) {
	var canon bytes.Buffer
	if err := json.Compact(&canon, x.Entry); err != nil {
		return v.bad(0, KindAltered, "%s is not JSON", name)
	}
	e, err := ParseEntry(canon.Bytes())
	if err != nil {
		return v.bad(0, KindAltered, "%s was altered: it is not a canonical audit entry", name)
	}
	switch {
	case e.Seq == 0 || e.Seq > v.cp.Size:
		return v.bad(e.Seq, KindInserted, "entry %d is not among the %d entries of the signed checkpoint (inserted)", e.Seq, v.cp.Size)
	case prev != nil && e.Seq <= prev.entry.Seq:
		return v.bad(e.Seq, KindReordered, "entry %d follows entry %d in the export (reordered)", e.Seq, prev.entry.Seq)
	}
	leaf := LeafHash(canon.Bytes())
	path, ok := decodeProof(x.Proof)
	if !ok {
		return v.bad(e.Seq, KindAltered, "entry %d has a malformed inclusion proof", e.Seq)
	}
	if err := proof.VerifyInclusion(hasher, e.Seq-1, v.cp.Size, leaf, path, v.cp.Root); err != nil {
		return v.bad(e.Seq, KindAltered, "entry %d was altered: it is not the entry at its position in the signed log (or its proof was edited)", e.Seq)
	}
	// The chain link: the predecessor is the previous entry of the
	// document, or proven by prev_proof to be the log's leaf before e.
	switch {
	case e.Seq == 1:
		if e.Prev != "" {
			return v.bad(1, KindAltered, "entry 1 names a predecessor")
		}
	case prev != nil && prev.entry.Seq == e.Seq-1:
		if e.Prev != hex.EncodeToString(prev.leaf) {
			return v.bad(prev.entry.Seq, KindAltered, "entry %d was altered: entry %d recorded a different hash for it", prev.entry.Seq, e.Seq)
		}
	case x.PrevProof == nil:
		return v.bad(e.Seq-1, KindRemoved, "entry %d was removed from the export: entry %d follows it and carries no proof of its link", e.Seq-1, e.Seq)
	default:
		prevLeaf, okLeaf := hexLeaf(e.Prev)
		prevPath, okPath := decodeProof(x.PrevProof)
		if !okLeaf || !okPath || proof.VerifyInclusion(hasher, e.Seq-2, v.cp.Size, prevLeaf, prevPath, v.cp.Root) != nil {
			return v.bad(e.Seq, KindAltered, "entry %d: its link to entry %d is not proven (the export was edited)", e.Seq, e.Seq-1)
		}
	}
	return verifiedItem{entry: e, leaf: leaf}, true
}

// decodeProof decodes base64 hashes of 32 bytes; a proof is at most one
// hash per tree level.
func decodeProof(in []string) ([][]byte, bool) {
	if len(in) > 64 {
		return nil, false
	}
	out := make([][]byte, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(b) != hasher.Size() {
			return nil, false
		}
		out[i] = b
	}
	return out, true
}

// hexLeaf decodes a link to a predecessor.
func hexLeaf(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil && len(b) == hasher.Size()
}
