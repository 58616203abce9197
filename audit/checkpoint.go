package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a tree head in the C2SP tlog-checkpoint format:
// "<origin>\n<size>\n<base64 root>\n".
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
}

func (c Checkpoint) text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root))
}

func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[3] != "" {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint size: %w", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return Checkpoint{}, errors.New("checkpoint root: want 32 bytes in base64")
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// Signer signs checkpoints with an Ed25519 note key.
type Signer struct {
	signer   note.Signer
	verifier string
}

// GenerateSigningKey creates a key pair named origin (the log's name, such
// as "consult.example-hospital.org/audit"): skey is secret, vkey is what
// auditors get.
func GenerateSigningKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// NewSigner loads a signer from its secret key.
func NewSigner(skey, vkey string) (*Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	return &Signer{signer: s, verifier: strings.TrimSpace(vkey)}, nil
}

// LoadOrCreateSigner reads the key pair from path (mode 0600), creating it
// on first start. The file holds the secret key and the public key, one per
// line.
func LoadOrCreateSigner(path, origin string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		skey, vkey, err := GenerateSigningKey(origin)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(skey+"\n"+vkey+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("audit signing key: %w", err)
		}
		return NewSigner(skey, vkey)
	}
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		return nil, fmt.Errorf("audit signing key %s: want the secret and the public key, one per line", path)
	}
	return NewSigner(lines[0], lines[1])
}

// Origin names the log.
func (s *Signer) Origin() string { return s.signer.Name() }

// VerifierKey is the public key auditors use.
func (s *Signer) VerifierKey() string { return s.verifier }

// Sign returns the signed note of a checkpoint.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: c.text()}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// OpenCheckpoint verifies a signed checkpoint against the auditor's key.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open(bytes.TrimSpace(signed), note.VerifierList(v))
	if err != nil {
		// note.Open wants the trailing newline the signature block ends with.
		n, err = note.Open(append(bytes.TrimSpace(signed), '\n'), note.VerifierList(v))
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint of log %q, key of %q", cp.Origin, v.Name())
	}
	return cp, nil
}
