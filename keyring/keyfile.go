package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the argon2id costs of a key file. They are recorded in the
// file, so raising them later (ChangePassphrase with WithKDFParams) leaves
// older files readable.
type KDFParams struct {
	MemoryKiB uint32 `json:"memory_kib"`
	Time      uint32 `json:"time"`
	Threads   uint8  `json:"threads"`
}

// defaultKDFParams: the key file is opened once per start, not per
// request, so it can afford twice the memory of a password hash.
func defaultKDFParams() KDFParams { return KDFParams{MemoryKiB: 128 * 1024, Time: 4, Threads: 2} }

// DefaultKDFParams are the costs NewKeyFile uses unless told otherwise
// (128 MiB, 4 passes, 2 lanes). Treat it as read-only: the functions of this
// package take their defaults from a private copy.
var DefaultKDFParams = defaultKDFParams()

// Bounds on recorded parameters. The lower ones refuse a file that is cheap
// to brute-force; the upper ones keep a damaged or hostile file from making
// a start allocate gigabytes or spin for minutes.
const (
	minMemoryKiB  = 8 * 1024
	maxMemoryKiB  = 4 * 1024 * 1024
	maxTime       = 64
	minPassphrase = 12
	maxKeyFile    = 64 << 10
)

func (p KDFParams) validate() error {
	if p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB || p.Time < 1 || p.Time > maxTime || p.Threads < 1 {
		return fmt.Errorf("argon2id parameters out of range (memory %d-%d KiB, time 1-%d, threads 1-255)", minMemoryKiB, maxMemoryKiB, maxTime)
	}
	return nil
}

// KeyFileOption adjusts how a key file is written.
type KeyFileOption func(*keyFileOptions)

type keyFileOptions struct {
	params *KDFParams
}

// WithKDFParams sets the argon2id costs of the file being written, instead
// of the defaults (or, for ChangePassphrase, instead of the stronger of the
// recorded costs and the defaults).
func WithKDFParams(p KDFParams) KeyFileOption {
	return func(o *keyFileOptions) { o.params = &p }
}

// keyFile is the on-disk form of a passphrase-protected master key. The
// format string carries the version; a later layout gets a new string.
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

// ErrWrongPassphrase is returned when a key file does not open: the
// passphrase is wrong, or the sealed key in the file was altered.
var ErrWrongPassphrase = errors.New("the key file does not open with this passphrase")

// NewKeyFile creates a fresh random master key, writes it to path sealed
// under passphrase, and returns it. An existing file at path is never
// replaced: losing a master key loses every sealed field.
func NewKeyFile(path, passphrase string, opts ...KeyFileOption) (MasterKey, error) {
	o := applyOptions(opts)
	p := defaultKDFParams()
	if o.params != nil {
		p = *o.params
	}
	m, err := NewMasterKey()
	if err != nil {
		return MasterKey{}, err
	}
	if err := WriteKeyFile(path, passphrase, m, p); err != nil {
		m.Wipe()
		return MasterKey{}, err
	}
	return m, nil
}

// WriteKeyFile seals m under passphrase with argon2id costs p and writes it
// to path, mode 0600, atomically: a crash leaves no file or a whole one. It
// refuses to replace an existing file.
func WriteKeyFile(path, passphrase string, m MasterKey, p KDFParams) error {
	b, err := sealKeyFile(passphrase, m, p)
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := writeFileAtomic(path, b, false); err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

// OpenKeyFile reads the master key from a key file with its passphrase. A
// wrong passphrase gives an error wrapping ErrWrongPassphrase.
func OpenKeyFile(path, passphrase string) (MasterKey, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return MasterKey{}, err
	}
	m, err := openKeyFile(b, passphrase)
	if err != nil {
		return MasterKey{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return m, nil
}

// ReadKeyFile is OpenKeyFile.
func ReadKeyFile(path, passphrase string) (MasterKey, error) { return OpenKeyFile(path, passphrase) }

// ChangePassphrase re-seals the master key of the file at path under a new
// passphrase and a fresh salt, replacing the file atomically. The master key
// itself, and so the database, is unchanged. The argon2id costs become the
// stronger of those recorded and the defaults, unless WithKDFParams says
// otherwise; calling it with the same passphrase twice just raises costs.
func ChangePassphrase(path, oldPassphrase, newPassphrase string, opts ...KeyFileOption) error {
	b, err := readKeyFile(path)
	if err != nil {
		return err
	}
	kf, err := decodeKeyFile(b)
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	m, err := openKeyFile(b, oldPassphrase)
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	defer m.Wipe()
	p := raiseToDefaults(kf.Params)
	if o := applyOptions(opts); o.params != nil {
		p = *o.params
	}
	out, err := sealKeyFile(newPassphrase, m, p)
	if err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if err := writeFileAtomic(path, out, true); err != nil {
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return nil
}

func applyOptions(opts []KeyFileOption) keyFileOptions {
	var o keyFileOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// raiseToDefaults never lowers a cost an operator chose.
func raiseToDefaults(p KDFParams) KDFParams {
	d := defaultKDFParams()
	return KDFParams{MemoryKiB: max(p.MemoryKiB, d.MemoryKiB), Time: max(p.Time, d.Time), Threads: max(p.Threads, d.Threads)}
}

func sealKeyFile(passphrase string, m MasterKey, p KDFParams) ([]byte, error) {
	if utf8.RuneCountInString(passphrase) < minPassphrase {
		return nil, fmt.Errorf("passphrase: use at least %d characters", minPassphrase)
	}
	if m.isZero() {
		return nil, errZeroMaster
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	kf := keyFile{Format: keyFileFormat, KDF: "argon2id", Params: p, Salt: make([]byte, 16), Nonce: make([]byte, 12), Fingerprint: m.Fingerprint()}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(kf.Nonce); err != nil {
		return nil, err
	}
	aead, err := kf.aead(passphrase)
	if err != nil {
		return nil, err
	}
	kf.Sealed = aead.Seal(nil, kf.Nonce, m.key[:], []byte(keyFileFormat))
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: larger than %d bytes, not a key file", path, maxKeyFile)
	}
	return b, nil
}

// decodeKeyFile checks the structure and bounds of a key file before any
// expensive derivation runs on what it says.
func decodeKeyFile(b []byte) (keyFile, error) {
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return keyFile{}, errors.New("not a key file (invalid JSON)")
	}
	if kf.Format != keyFileFormat || kf.KDF != "argon2id" {
		return keyFile{}, fmt.Errorf("unknown key file format %q (kdf %q)", kf.Format, kf.KDF)
	}
	if err := kf.Params.validate(); err != nil {
		return keyFile{}, err
	}
	if len(kf.Salt) < 16 || len(kf.Salt) > 64 || len(kf.Nonce) != 12 || len(kf.Sealed) != 32+16 || len(kf.Fingerprint) != 16 {
		return keyFile{}, errors.New("malformed key file (salt, nonce, sealed key or fingerprint has the wrong size)")
	}
	return kf, nil
}

func openKeyFile(b []byte, passphrase string) (MasterKey, error) {
	kf, err := decodeKeyFile(b)
	if err != nil {
		return MasterKey{}, err
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
	// The fingerprint is outside the sealed part; a mismatch means someone
	// edited it, and an operator comparing fingerprints would be misled.
	if m.Fingerprint() != kf.Fingerprint {
		m.Wipe()
		return MasterKey{}, errors.New("the fingerprint recorded in the key file does not match its key (file altered)")
	}
	if m.isZero() {
		return MasterKey{}, errZeroMaster
	}
	return m, nil
}

func (kf *keyFile) aead(passphrase string) (cipher.AEAD, error) {
	pass := []byte(passphrase)
	k := argon2.IDKey(pass, kf.Salt, kf.Params.Time, kf.Params.MemoryKiB, kf.Params.Threads, 32)
	clear(pass)
	defer clear(k)
	return newAEAD(k)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// writeFileAtomic writes data to a temporary file in the target directory,
// syncs it, then moves it into place, so a crash never leaves a truncated
// key file. Without replace it uses link(2), which fails when path exists,
// closing the window between a check and a rename.
func writeFileAtomic(path string, data []byte, replace bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keyfile-*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	// CreateTemp already uses 0600; Chmod states it regardless of how the
	// temporary file came to exist.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(name, path)
	} else {
		err = os.Link(name, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: refusing to replace a master key file", path)
		}
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the new directory entry durable, so a power loss right
// after a rotation cannot bring back the old key file or none.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
