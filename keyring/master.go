package keyring

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// MasterKey wraps the data keys. It lives in memory only: it is read from
// the environment or from a passphrase-protected key file at start, and no
// function of this package writes it anywhere in clear except Base64, which
// exists for handing it to a secret store.
//
// A MasterKey formats as its fingerprint under every fmt verb and in slog,
// so a stray log line or %+v cannot leak it.
type MasterKey struct {
	key [32]byte
}

// NewMasterKey returns a random master key.
func NewMasterKey() (MasterKey, error) {
	var m MasterKey
	if _, err := rand.Read(m.key[:]); err != nil {
		return MasterKey{}, fmt.Errorf("new master key: %w", err)
	}
	return m, nil
}

// MasterKeyFromBase64 reads a master key given as standard base64 of 32
// bytes, as in the SIGNAL_MASTER_KEY environment variable. Surrounding
// white space (a trailing newline from a secret file) is ignored. The error
// never repeats the input.
func MasterKeyFromBase64(s string) (MasterKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	defer clear(b)
	if err != nil || len(b) != len(MasterKey{}.key) {
		return MasterKey{}, errors.New("master key: want 32 bytes in standard base64 (44 characters)")
	}
	var m MasterKey
	copy(m.key[:], b)
	if m.isZero() {
		return MasterKey{}, errors.New("master key: all zero bytes is not a key")
	}
	return m, nil
}

// Base64 encodes the key for an environment variable or a secret store.
// It is the only way key material leaves this package.
func (m MasterKey) Base64() string { return base64.StdEncoding.EncodeToString(m.key[:]) }

// Fingerprint identifies a master key without revealing it (64 bits of a
// domain-separated SHA-256), so an operator can tell which master key wraps
// the data keys and which one a key file holds.
func (m MasterKey) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte("openconsult master key fingerprint:"))
	h.Write(m.key[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Equal reports whether two master keys are the same, in constant time.
func (m MasterKey) Equal(o MasterKey) bool {
	return subtle.ConstantTimeCompare(m.key[:], o.key[:]) == 1
}

// Wipe zeroes this copy of the key. Copies made earlier by assignment are
// not affected; call it on each one that is no longer needed.
func (m *MasterKey) Wipe() { clear(m.key[:]) }

// String names the key by its fingerprint.
func (m MasterKey) String() string { return "master key " + m.Fingerprint() }

// Format makes every verb (%x and %#v included) print the fingerprint:
// without it, %x or %+v would print the key bytes.
func (m MasterKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// LogValue keeps the key out of structured logs.
func (m MasterKey) LogValue() slog.Value { return slog.StringValue(m.String()) }

// isZero catches a MasterKey{} that slipped past an ignored error: data
// keys wrapped by it would be protected by nothing.
func (m MasterKey) isZero() bool {
	var zero [32]byte
	return subtle.ConstantTimeCompare(m.key[:], zero[:]) == 1
}

// errZeroMaster is returned wherever a zero master key would wrap or unwrap.
var errZeroMaster = errors.New("master key is empty (all zero): refusing to use it")
