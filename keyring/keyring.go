package keyring

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DataKey is a wrapped data key as stored.
type DataKey struct {
	ID        uint32
	Wrapped   []byte
	Master    string // fingerprint of the master key that wraps it
	CreatedAt time.Time
	Active    bool
}

// Storage keeps wrapped data keys.
type Storage interface {
	DataKeys(ctx context.Context) ([]DataKey, error)
	AddDataKey(ctx context.Context, k DataKey) error // becomes the only active key
	RewrapDataKeys(ctx context.Context, keys []DataKey) error
}

// Keyring seals and unseals field values.
type Keyring struct {
	storage Storage
	master  MasterKey

	mu     sync.RWMutex
	keys   map[uint32]*dataKey
	active uint32
}

type dataKey struct {
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

const (
	version   = 1
	headerLen = 1 + 4 + 12
)

// Open loads the data keys, creating the first one on an empty database.
// A data key wrapped by another master key is an error naming both
// fingerprints, so a wrong key never silently writes under a new key.
func Open(ctx context.Context, s Storage, master MasterKey) (*Keyring, error) {
	k := &Keyring{storage: s, master: master}
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	if k.active == 0 {
		if _, err := k.RotateDataKey(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keyring) reload(ctx context.Context) error {
	stored, err := k.storage.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("read data keys: %w", err)
	}
	keys := map[uint32]*dataKey{}
	var active uint32
	for _, d := range stored {
		if d.Master != k.master.Fingerprint() {
			return fmt.Errorf("data key %d is wrapped by master key %s, but the master key given is %s", d.ID, d.Master, k.master.Fingerprint())
		}
		raw, err := k.unwrap(d)
		if err != nil {
			return err
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return err
		}
		keys[d.ID] = &dataKey{aead: aead}
		if d.Active {
			active = d.ID
		}
	}
	k.mu.Lock()
	k.keys, k.active = keys, active
	k.mu.Unlock()
	return nil
}

func wrapAAD(id uint32) []byte { return fmt.Appendf(nil, "openconsult data key %d", id) }

func (k *Keyring) unwrap(d DataKey) ([]byte, error) {
	aead, err := newAEAD(k.master.key[:])
	if err != nil {
		return nil, err
	}
	if len(d.Wrapped) < 12 {
		return nil, fmt.Errorf("data key %d: malformed", d.ID)
	}
	raw, err := aead.Open(nil, d.Wrapped[:12], d.Wrapped[12:], wrapAAD(d.ID))
	if err != nil {
		return nil, fmt.Errorf("data key %d does not open with the master key", d.ID)
	}
	return raw, nil
}

func wrap(master MasterKey, id uint32, raw []byte) ([]byte, error) {
	aead, err := newAEAD(master.key[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, raw, wrapAAD(id)), nil
}

// RotateDataKey creates a new data key for new writes; older keys stay for
// reading. It returns the new key's id.
func (k *Keyring) RotateDataKey(ctx context.Context) (uint32, error) {
	k.mu.RLock()
	id := uint32(1)
	for existing := range k.keys {
		id = max(id, existing+1)
	}
	k.mu.RUnlock()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return 0, err
	}
	defer clear(raw)
	wrapped, err := wrap(k.master, id, raw)
	if err != nil {
		return 0, err
	}
	if err := k.storage.AddDataKey(ctx, DataKey{ID: id, Wrapped: wrapped, Master: k.master.Fingerprint(), CreatedAt: time.Now().UTC(), Active: true}); err != nil {
		return 0, fmt.Errorf("store data key: %w", err)
	}
	return id, k.reload(ctx)
}

// RotateMaster re-wraps every data key under next in one transaction.
// Sealed fields are untouched, so running servers keep working with the
// data keys they hold; they need next only when they restart.
func RotateMaster(ctx context.Context, s Storage, old, next MasterKey) (int, error) {
	tmp := &Keyring{storage: s, master: old}
	stored, err := s.DataKeys(ctx)
	if err != nil {
		return 0, err
	}
	out := make([]DataKey, 0, len(stored))
	for _, d := range stored {
		if d.Master != old.Fingerprint() {
			return 0, fmt.Errorf("data key %d is wrapped by master key %s, not by the old key %s", d.ID, d.Master, old.Fingerprint())
		}
		raw, err := tmp.unwrap(d)
		if err != nil {
			return 0, err
		}
		d.Wrapped, err = wrap(next, d.ID, raw)
		clear(raw)
		if err != nil {
			return 0, err
		}
		d.Master = next.Fingerprint()
		out = append(out, d)
	}
	if err := s.RewrapDataKeys(ctx, out); err != nil {
		return 0, fmt.Errorf("re-wrap data keys: %w", err)
	}
	return len(out), nil
}

// Seal encrypts plaintext bound to aad with the active data key:
// version (1) | key id (4) | nonce (12) | ciphertext+tag.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	id := k.active
	dk := k.keys[id]
	k.mu.RUnlock()
	if dk == nil {
		return nil, errors.New("keyring: no active data key")
	}
	out := make([]byte, headerLen, headerLen+len(plaintext)+16)
	out[0] = version
	binary.BigEndian.PutUint32(out[1:5], id)
	if _, err := rand.Read(out[5:headerLen]); err != nil {
		return nil, err
	}
	return dk.aead.Seal(out, out[5:headerLen], plaintext, aad), nil
}

// ErrUnseal is returned for a value that does not open: tampered, moved to
// another row or column, truncated, or sealed under an unknown key.
var ErrUnseal = errors.New("sealed value does not open")

// Unseal decrypts a value sealed with the same aad. A key id this process
// has not seen (another node rotated) triggers one reload.
func (k *Keyring) Unseal(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < headerLen+16 || sealed[0] != version {
		return nil, ErrUnseal
	}
	id := binary.BigEndian.Uint32(sealed[1:5])
	k.mu.RLock()
	dk := k.keys[id]
	k.mu.RUnlock()
	if dk == nil {
		if err := k.reload(context.Background()); err != nil {
			return nil, err
		}
		k.mu.RLock()
		dk = k.keys[id]
		k.mu.RUnlock()
		if dk == nil {
			return nil, ErrUnseal
		}
	}
	plain, err := dk.aead.Open(nil, sealed[5:headerLen], sealed[headerLen:], aad)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

// SealString seals a string.
func (k *Keyring) SealString(s string, aad []byte) ([]byte, error) { return k.Seal([]byte(s), aad) }

// UnsealString unseals a string.
func (k *Keyring) UnsealString(b []byte, aad []byte) (string, error) {
	p, err := k.Unseal(b, aad)
	return string(p), err
}

// Describe returns the stored data keys without their wrapped bytes.
func Describe(ctx context.Context, s Storage) ([]DataKey, error) {
	keys, err := s.DataKeys(ctx)
	for i := range keys {
		keys[i].Wrapped = nil
	}
	return keys, err
}
