package audit

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// CheckpointFileName is the append-only file of signed checkpoints kept in
// the checkpoint directory, outside the database.
const CheckpointFileName = "checkpoints"

// maxRecord bounds one record of a checkpoint file (a note is a few
// hundred bytes).
const maxRecord = 64 << 10

// CheckpointFile appends every checkpoint the log signs to a file outside
// the database: one record a line, the signed note in base64, written with
// O_APPEND and fsync'd before the checkpoint counts as issued. It is safe
// for concurrent use.
type CheckpointFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenCheckpointFile opens (creating) the checkpoint file in dir. The
// directory is created mode 0700 and the file 0600; either open to other
// users is refused, as whoever can write them can hide a deletion. A
// record torn by a crash is closed with a newline so the next record
// starts on a line of its own.
func OpenCheckpointFile(dir string) (*CheckpointFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit checkpoint directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("audit checkpoint directory: %w", err)
	} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit checkpoint directory %s has mode %04o: make it accessible to its owner only (chmod 700)", dir, perm)
	}
	path := filepath.Join(dir, CheckpointFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint file: %w", err)
	}
	c := &CheckpointFile{path: path, f: f}
	if err := c.check(); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// check refuses a file others can read or write and ends a torn last
// record.
func (c *CheckpointFile) check() error {
	fi, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("audit checkpoint file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("audit checkpoint file %s has mode %04o: make it readable by its owner only (chmod 600)", c.path, perm)
	}
	if fi.Size() == 0 {
		return syncDir(filepath.Dir(c.path))
	}
	r, err := os.Open(c.path)
	if err != nil {
		return fmt.Errorf("audit checkpoint file: %w", err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, fi.Size()-1); err != nil {
		return fmt.Errorf("audit checkpoint file %s: %w", c.path, err)
	}
	if last[0] != '\n' {
		if _, err := c.f.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("audit checkpoint file %s: %w", c.path, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit checkpoint directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit checkpoint directory: %w", err)
	}
	return nil
}

// Path is the file's path.
func (c *CheckpointFile) Path() string { return c.path }

// Append writes one signed note as a record and syncs it to disk.
func (c *CheckpointFile) Append(note []byte) error {
	rec := base64.StdEncoding.EncodeToString(note) + "\n"
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.WriteString(rec); err != nil {
		return fmt.Errorf("audit checkpoint file %s: %w", c.path, err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("audit checkpoint file %s: %w", c.path, err)
	}
	return nil
}

// Close closes the file.
func (c *CheckpointFile) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Close()
}

// ExternalCheckpoint is a signed checkpoint kept outside the database, not
// yet verified, with where it was found.
type ExternalCheckpoint struct {
	Note   []byte
	Source string // such as "/srv/audit/checkpoints record 12"
}

// ReadCheckpointFile returns the newest checkpoint kept at path that
// verifies with vkey, preceded by every record claiming a larger size that
// does not verify, so that Verify names them (ReadCheckpoints,
// NewestCheckpoints). A file with no checkpoint returns nothing.
func ReadCheckpointFile(path, vkey string) ([]ExternalCheckpoint, error) {
	recs, err := ReadCheckpoints(path)
	if err != nil {
		return nil, err
	}
	return NewestCheckpoints(recs, vkey)
}

// ReadCheckpoints reads the checkpoints kept at path, in the order they
// were written: a checkpoint file, lines ending in a record (as syslog
// keeps them), or one signed note as a witness received it. Signatures are
// not checked. A line that does not decode (a record torn by a crash) is
// skipped.
func ReadCheckpoints(path string) ([]ExternalCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	defer f.Close()
	return ParseCheckpoints(f, path)
}

// ParseCheckpoints decodes the checkpoints in r as ReadCheckpoints does;
// name labels where each was found.
func ParseCheckpoints(r io.Reader, name string) ([]ExternalCheckpoint, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxExportBytes))
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints %s: %w", name, err)
	}
	if _, ok := claimedSize(data); ok {
		// A signed note as it is, not a file of records.
		return []ExternalCheckpoint{{Note: data, Source: name}}, nil
	}
	var out []ExternalCheckpoint
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxRecord)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		note, err := base64.StdEncoding.Strict().DecodeString(fields[len(fields)-1])
		if err != nil {
			continue // torn, or a line of something else
		}
		if _, ok := claimedSize(note); ok {
			out = append(out, ExternalCheckpoint{Note: note, Source: fmt.Sprintf("%s record %d", name, n)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit checkpoints %s: %w", name, err)
	}
	return out, nil
}

// claimedSize reads the size a note's text states, without checking its
// signature.
func claimedSize(note []byte) (uint64, bool) {
	text, _, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return 0, false
	}
	cp, err := parseCheckpoint(string(text) + "\n")
	return cp.Size, err == nil
}

// NewestCheckpoints orders recs by the size they claim, largest first,
// and keeps them down to the first that verifies with vkey: the newest
// valid checkpoint comes last, after any larger claims that are forged.
func NewestCheckpoints(recs []ExternalCheckpoint, vkey string) ([]ExternalCheckpoint, error) {
	if _, err := newVerifier(vkey); err != nil {
		return nil, err
	}
	type claim struct {
		size uint64
		i    int
	}
	claims := make([]claim, len(recs))
	for i, r := range recs {
		size, _ := claimedSize(r.Note)
		claims[i] = claim{size, i}
	}
	slices.SortStableFunc(claims, func(a, b claim) int { return cmp.Compare(b.size, a.size) })
	var out []ExternalCheckpoint
	for _, c := range claims {
		out = append(out, recs[c.i])
		if _, err := OpenCheckpoint(recs[c.i].Note, vkey); err == nil {
			return out, nil
		}
	}
	return out, nil
}
