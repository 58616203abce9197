package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the tree: in the C2SP
// tlog-checkpoint format its note text is "<origin>\n<size>\n<base64
// root>\n".
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

func (c Checkpoint) text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

// parseCheckpoint reads the note text of a checkpoint. Extension lines
// after the root are allowed by C2SP and ignored here; they are covered by
// the signature all the same.
func parseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("checkpoint: text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root lines")
	}
	if lines[0] == "" {
		return Checkpoint{}, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: size %q is not a decimal number", lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != hasher.Size() {
		return Checkpoint{}, errors.New("checkpoint: root is not 32 bytes in base64")
	}
	for _, l := range lines[3:] {
		if l == "" {
			return Checkpoint{}, errors.New("checkpoint: empty extension line")
		}
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// OpenCheckpoint checks a signed checkpoint note with the auditor's
// verifier key and returns what it states. The key's name must be the
// checkpoint's origin, so a checkpoint of another log signed with the same
// key material is refused too.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := newVerifier(vkey)
	if err != nil {
		return Checkpoint{}, err
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return Checkpoint{}, errors.New("checkpoint signature: not signed with this log's key")
		}
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint of log %q, key of log %q", cp.Origin, v.Name())
	}
	return cp, nil
}

func newVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	return v, nil
}

// Signer signs checkpoints with an Ed25519 note key. It holds no copy of
// the secret key string, and prints as nothing secret.
type Signer struct {
	signer   note.Signer
	verifier string
}

// GenerateSigningKey creates a key pair named origin, the log's name (such
// as "consult.example-hospital.org/audit"): skey is secret, vkey is the
// verifier key auditors are given.
func GenerateSigningKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generate audit signing key %q: %w", origin, err)
	}
	return skey, vkey, nil
}

// NewSigner makes a signer from its secret key, deriving the verifier key.
func NewSigner(skey string) (*Signer, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	// note.NewSigner accepted "PRIVATE+KEY+<name>+<hash>+<base64 key>"
	// (a name has no "+"; the base64 may) with a 1-byte algorithm and a
	// 32-byte Ed25519 seed.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil, errors.New("audit signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	return &Signer{signer: s, verifier: vkey}, nil
}

// Origin names the log; it is the signing key's name.
func (s *Signer) Origin() string { return s.signer.Name() }

// VerifierKey is the public key auditors verify with (signal audit verify
// -pubkey).
func (s *Signer) VerifierKey() string { return s.verifier }

// String keeps the signer's key material out of every print form.
func (s *Signer) String() string { return "audit signer " + s.verifier }

// Sign returns the signed note of a checkpoint.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	if c.Origin != s.Origin() {
		return nil, fmt.Errorf("sign checkpoint of %q with the key of %q", c.Origin, s.Origin())
	}
	b, err := note.Sign(&note.Note{Text: c.text()}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// SaveSigningKey writes a new key file readable by its owner only: the
// secret key on the first line, the verifier key on the second. It never
// replaces an existing file, and the file appears complete or not at all,
// so two processes starting together cannot end up with two keys.
func SaveSigningKey(path, skey string) error {
	s, err := NewSigner(skey)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-key-*")
	if err != nil {
		return fmt.Errorf("save audit signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states it.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(strings.TrimSpace(skey) + "\n" + s.VerifierKey() + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save audit signing key: %w", err)
	}
	// A hard link publishes the finished file and fails if one exists.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("save audit signing key: %w", err)
	}
	return nil
}

// LoadSigner reads a key file written by SaveSigningKey. A file that
// others than its owner may read or write is refused: whoever reads the
// key can sign a rewritten log.
func LoadSigner(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("audit signing key %s has mode %04o: make it readable by its owner only (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return nil, fmt.Errorf("audit signing key %s: want the secret and the verifier key, one per line", path)
	}
	s, err := NewSigner(lines[0])
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	if s.VerifierKey() != lines[1] {
		return nil, fmt.Errorf("audit signing key %s: the verifier key line does not belong to the secret key", path)
	}
	return s, nil
}

// LoadOrCreateSigner loads the key file at path, creating it with a new
// key named origin when it does not exist. An existing key keeps its own
// name (origin is then unused), so checkpoints stay verifiable with the
// key auditors already hold.
func LoadOrCreateSigner(path, origin string) (*Signer, error) {
	s, err := LoadSigner(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	skey, _, err := GenerateSigningKey(origin)
	if err != nil {
		return nil, err
	}
	if err := SaveSigningKey(path, skey); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	// Load what is on disk: another process may have created it first.
	return LoadSigner(path)
}
