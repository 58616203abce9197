package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"
)

// MasterKey protects the data keys. It lives in memory only.
type MasterKey struct {
	key [32]byte
}

// Fingerprint identifies a master key without revealing it: which master
// key wraps a data key is visible to an operator.
func (m MasterKey) Fingerprint() string {
	h := sha256.Sum256(append([]byte("openconsult master key fingerprint:"), m.key[:]...))
	return hex.EncodeToString(h[:8])
}

// NewMasterKey returns a random master key.
func NewMasterKey() (MasterKey, error) {
	var m MasterKey
	if _, err := rand.Read(m.key[:]); err != nil {
		return MasterKey{}, fmt.Errorf("master key: %w", err)
	}
	return m, nil
}

// MasterKeyFromBase64 reads a master key given as base64 (32 bytes), as in
// the SIGNAL_MASTER_KEY environment variable.
func MasterKeyFromBase64(s string) (MasterKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return MasterKey{}, errors.New("master key: want 32 bytes in standard base64 (44 characters)")
	}
	var m MasterKey
	copy(m.key[:], b)
	clear(b)
	return m, nil
}

// Base64 encodes the key for an environment variable or a secret store.
func (m MasterKey) Base64() string { return base64.StdEncoding.EncodeToString(m.key[:]) }

// KDFParams are the argon2id costs of a key file, recorded in the file so
// they can be raised later.
type KDFParams struct {
	MemoryKiB uint32 `json:"memory_kib"`
	Time      uint32 `json:"time"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDFParams: opening the key file happens once per start, so it can
// afford more than a sign-in.
var DefaultKDFParams = KDFParams{MemoryKiB: 128 * 1024, Time: 4, Threads: 2}

// keyFile is the on-disk form of a passphrase-protected master key.
type keyFile struct {
	Format      string    `json:"format"`
	KDF         string    `json:"kdf"`
	Params      KDFParams `json:"params"`
	Salt        []byte    `json:"salt"`
	Nonce       []byte    `json:"nonce"`
	Sealed      []byte    `json:"sealed_key"`
	Fingerprint string    `json:"fingerprint"`
}

const keyFileFormat = "openconsult-master-key-v1"

// WriteKeyFile seals m under passphrase and writes it to path, mode 0600,
// atomically (a crash leaves the old file or the new one, never half).
func WriteKeyFile(path, passphrase string, m MasterKey, p KDFParams) error {
	if len(passphrase) < 12 {
		return errors.New("key file passphrase: use at least 12 characters")
	}
	kf := keyFile{Format: keyFileFormat, KDF: "argon2id", Params: p, Salt: make([]byte, 16), Fingerprint: m.Fingerprint()}
	if _, err := rand.Read(kf.Salt); err != nil {
		return err
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return err
	}
	kf.Nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(kf.Nonce); err != nil {
		return err
	}
	kf.Sealed = aead.Seal(nil, kf.Nonce, m.key[:], []byte(keyFileFormat))
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyfile-*")
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	return nil
}

// ErrWrongPassphrase is returned when a key file does not open.
var ErrWrongPassphrase = errors.New("the key file does not open with this passphrase")

// ReadKeyFile opens a key file with its passphrase.
func ReadKeyFile(path, passphrase string) (MasterKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return MasterKey{}, fmt.Errorf("key file: %w", err)
	}
	return parseKeyFile(b, passphrase)
}

func parseKeyFile(b []byte, passphrase string) (MasterKey, error) {
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return MasterKey{}, fmt.Errorf("key file: not a key file: %w", err)
	}
	if kf.Format != keyFileFormat || kf.KDF != "argon2id" {
		return MasterKey{}, fmt.Errorf("key file: unknown format %q", kf.Format)
	}
	// Bounds keep a hostile file from turning a start into a memory bomb.
	if kf.Params.MemoryKiB < 8*1024 || kf.Params.MemoryKiB > 4*1024*1024 || kf.Params.Time < 1 || kf.Params.Time > 64 || kf.Params.Threads < 1 ||
		len(kf.Salt) < 16 || len(kf.Nonce) != 12 || len(kf.Sealed) != 32+16 {
		return MasterKey{}, errors.New("key file: parameters out of range")
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return MasterKey{}, err
	}
	plain, err := aead.Open(nil, kf.Nonce, kf.Sealed, []byte(keyFileFormat))
	if err != nil {
		return MasterKey{}, ErrWrongPassphrase
	}
	var m MasterKey
	copy(m.key[:], plain)
	clear(plain)
	return m, nil
}

func (kf *keyFile) aead(passphrase string) (cipher.AEAD, error) {
	k := argon2.IDKey([]byte(passphrase), kf.Salt, kf.Params.Time, kf.Params.MemoryKiB, kf.Params.Threads, 32)
	defer clear(k)
	return newAEAD(k)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
