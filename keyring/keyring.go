package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Sealed value layout: version (1 byte) | data key id (4, big endian) |
// nonce (12) | AES-256-GCM ciphertext and tag (16).
const (
	formatV1   = 1
	nonceLen   = 12
	tagLen     = 16
	headerLen  = 1 + 4 + nonceLen
	dataKeyLen = 32
	wrappedLen = nonceLen + dataKeyLen + tagLen
)

// reloadTimeout bounds the storage read an Unseal may trigger, since Unseal
// has no context of its own.
const reloadTimeout = 10 * time.Second

// attempts is how often an operation that lost a race with another process
// (ErrKeysChanged) re-reads and tries again.
const attempts = 3

// Errors a caller can act on.
var (
	// ErrUnseal: the value does not open. It was altered, truncated, moved
	// to another row or column, or names a data key that does not exist.
	ErrUnseal = errors.New("sealed value does not open")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("keyring is closed")
	// ErrNoAAD: a value must be bound to its place (table, column, row).
	ErrNoAAD = errors.New("additional data naming the value's place is required")
)

// Keyring seals and unseals field values with the data keys. It is safe
// for concurrent use. It holds the unwrapped data keys and a copy of the
// master key, the latter to unwrap data keys that other processes create.
type Keyring struct {
	storage Storage
	master  *MasterKey // wiped by Close
	fp      string

	// reloadMu serialises everything that uses the master key (reload,
	// rotation, Close), so a burst of values under an unknown key id costs
	// one storage read at a time.
	reloadMu sync.Mutex

	mu      sync.RWMutex
	keys    map[uint32]cipher.AEAD
	broken  map[uint32]error // stored keys this process cannot unwrap
	active  uint32
	maxSeen uint32 // highest id in storage at the last read
	closed  bool
}

// Open loads and unwraps the data keys, creating the first one on an empty
// database. A data key that master does not unwrap is an error naming both
// fingerprints, so a server given the wrong key stops at start instead of
// sealing new values under a key nobody else can read.
func Open(ctx context.Context, s Storage, master MasterKey) (*Keyring, error) {
	if master.isZero() {
		return nil, errZeroMaster
	}
	m := new(MasterKey)
	*m = master
	k := &Keyring{storage: s, master: m, fp: m.Fingerprint(), keys: map[uint32]cipher.AEAD{}}
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	for range attempts {
		if err := k.reload(ctx); err != nil {
			return nil, err
		}
		if err := k.firstBroken(); err != nil {
			return nil, err
		}
		if k.active != 0 {
			return k, nil
		}
		// Another node starting on the same empty database may win the
		// race for key 1; then the next round loads its key.
		_, err := k.addDataKey(ctx)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, ErrKeysChanged) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("create the first data key: %w", ErrKeysChanged)
}

// reload reads the stored data keys and unwraps those this process does not
// hold yet. Keys it already holds are kept as they are: a data key never
// changes, only its wrapping, so a process holding an old master key keeps
// every key it unwrapped before a master rotation. Keys it cannot unwrap
// are recorded in k.broken. The caller holds reloadMu.
func (k *Keyring) reload(ctx context.Context) error {
	stored, err := k.storage.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("read data keys: %w", err)
	}
	k.mu.RLock()
	closed := k.closed
	known := make(map[uint32]bool, len(k.keys))
	for id := range k.keys {
		known[id] = true
	}
	k.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	fresh := map[uint32]cipher.AEAD{}
	broken := map[uint32]error{}
	var active, maxID uint32
	for _, d := range stored {
		maxID = max(maxID, d.ID)
		if d.Active {
			active = d.ID
		}
		if known[d.ID] {
			continue
		}
		aead, err := unwrapAEAD(k.master, k.fp, d)
		if err != nil {
			broken[d.ID] = err
			continue
		}
		fresh[d.ID] = aead
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, a := range fresh {
		k.keys[id] = a
	}
	k.broken = broken
	// Newer keys have higher ids, so the active id only moves forward; a
	// read that raced with RotateDataKey in this process cannot undo it.
	if active > k.active && k.keys[active] != nil {
		k.active = active
	}
	k.maxSeen = max(k.maxSeen, maxID)
	return nil
}

// firstBroken returns the error of the lowest data key this process could
// not unwrap, with a count when there are several.
func (k *Keyring) firstBroken() error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.broken) == 0 {
		return nil
	}
	ids := make([]uint32, 0, len(k.broken))
	for id := range k.broken {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	err := k.broken[ids[0]]
	if len(ids) > 1 {
		return fmt.Errorf("%w (and %d more data keys)", err, len(ids)-1)
	}
	return err
}

// Refresh loads data keys created by other processes since the last read,
// and makes the newest active one this process can unwrap the key for new
// values. Unseal does this by itself when it meets an unknown newer key;
// calling Refresh on a timer bounds how long this process keeps sealing
// with a key another process retired (those values stay readable either way).
func (k *Keyring) Refresh(ctx context.Context) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	return k.reload(ctx)
}

// Close wipes this keyring's copy of the master key and forgets the data
// keys; later calls return ErrClosed.
func (k *Keyring) Close() {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	k.keys, k.broken, k.active = nil, nil, 0
	k.master.Wipe()
}

// String describes the keyring without key material.
func (k *Keyring) String() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return fmt.Sprintf("keyring (master key %s, %d data keys, active %d)", k.fp, len(k.keys), k.active)
}

// Seal encrypts plaintext with the active data key, bound to aad, which
// names the value's place (for example "users.totp_secret:u_123"): the
// value opens only with the same aad, so a sealed value copied to another
// row or column does not open.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrNoAAD
	}
	k.mu.RLock()
	id, aead, closed := k.active, k.keys[k.active], k.closed
	k.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if aead == nil {
		return nil, errors.New("seal: no active data key")
	}
	out := make([]byte, headerLen, headerLen+len(plaintext)+tagLen)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], id)
	// Random 96-bit nonces are safe for about 2^32 values per data key;
	// rotating the data key starts a new budget.
	if _, err := rand.Read(out[5:headerLen]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return aead.Seal(out, out[5:headerLen], plaintext, aad), nil
}

// Unseal decrypts a value sealed with the same aad. A value under a data
// key newer than any this process knows (another process rotated) makes it
// read the data keys once more. Every value that does not open gives an
// error wrapping ErrUnseal, except one under a data key this process cannot
// unwrap (its master key was rotated away), which names the fingerprints.
func (k *Keyring) Unseal(sealed, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, ErrNoAAD
	}
	id, nonce, body, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	aead, err := k.dataKey(id)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, body, aad)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

// SealString seals a string.
func (k *Keyring) SealString(s string, aad []byte) ([]byte, error) {
	b := []byte(s)
	defer clear(b)
	return k.Seal(b, aad)
}

// UnsealString unseals a string.
func (k *Keyring) UnsealString(sealed, aad []byte) (string, error) {
	b, err := k.Unseal(sealed, aad)
	if err != nil {
		return "", err
	}
	s := string(b)
	clear(b)
	return s, nil
}

// SealedKeyID returns the id of the data key a value is sealed under,
// without opening it: it tells which values a retired key still protects.
func SealedKeyID(sealed []byte) (uint32, error) {
	id, _, _, err := parseSealed(sealed)
	return id, err
}

func parseSealed(b []byte) (id uint32, nonce, body []byte, err error) {
	if len(b) < headerLen+tagLen {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes is too short", ErrUnseal, len(b))
	}
	if b[0] != formatV1 {
		return 0, nil, nil, fmt.Errorf("%w: unknown format version %d", ErrUnseal, b[0])
	}
	return binary.BigEndian.Uint32(b[1:5]), b[5:headerLen], b[headerLen:], nil
}

// dataKey returns the data key id, reading the stored keys again when id is
// newer than any seen so far.
func (k *Keyring) dataKey(id uint32) (cipher.AEAD, error) {
	if aead, done, err := k.lookup(id); done {
		return aead, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	k.reloadMu.Lock()
	// Another goroutine may have read the keys while this one waited.
	_, done, _ := k.lookup(id)
	var err error
	if !done {
		err = k.reload(ctx)
	}
	k.reloadMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("unseal: data key %d: %w", id, err)
	}
	if aead, done, err := k.lookup(id); done {
		return aead, err
	}
	return nil, fmt.Errorf("%w: unknown data key %d", ErrUnseal, id)
}

// lookup answers from memory; done is false only for an id newer than any
// seen in storage, which is worth a read.
func (k *Keyring) lookup(id uint32) (aead cipher.AEAD, done bool, err error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	switch {
	case k.closed:
		return nil, true, ErrClosed
	case k.keys[id] != nil:
		return k.keys[id], true, nil
	case k.broken[id] != nil:
		return nil, true, k.broken[id]
	case id <= k.maxSeen:
		return nil, true, fmt.Errorf("%w: unknown data key %d", ErrUnseal, id)
	}
	return nil, false, nil
}

// RotateDataKey creates a new data key, wrapped by this keyring's master
// key, and makes it the active one for new values in storage and in this
// process. Older keys are retired but stay readable. Other processes switch
// to it at their next Refresh or when they first unseal a value under it.
// It returns the new key's id.
func (k *Keyring) RotateDataKey(ctx context.Context) (uint32, error) {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	for range attempts {
		id, err := k.addDataKey(ctx)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrKeysChanged) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("rotate data key: %w", ErrKeysChanged)
}

// addDataKey makes one attempt at storing a fresh data key after the
// highest stored id. The caller holds reloadMu.
func (k *Keyring) addDataKey(ctx context.Context) (uint32, error) {
	k.mu.RLock()
	closed := k.closed
	k.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	stored, err := k.storage.DataKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("read data keys: %w", err)
	}
	var top uint32
	for _, d := range stored {
		if d.Master != k.fp {
			return 0, fmt.Errorf("new data key: the stored data keys are wrapped by master key %s, but this process holds master key %s (restart it with the current master key)", d.Master, k.fp)
		}
		top = max(top, d.ID)
	}
	if top == math.MaxUint32 {
		return 0, errors.New("new data key: no data key ids left")
	}
	id := top + 1
	raw := make([]byte, dataKeyLen)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return 0, fmt.Errorf("new data key: %w", err)
	}
	wrapped, err := wrap(k.master, id, raw)
	if err != nil {
		return 0, err
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return 0, err
	}
	if err := k.storage.AddDataKey(ctx, DataKey{ID: id, Wrapped: wrapped, Master: k.fp, CreatedAt: time.Now().UTC(), Active: true}); err != nil {
		return 0, fmt.Errorf("store data key %d: %w", id, err)
	}
	k.mu.Lock()
	k.keys[id] = aead
	k.active = max(k.active, id)
	k.maxSeen = max(k.maxSeen, id)
	k.mu.Unlock()
	return id, nil
}

// wrapAAD binds a wrapped data key to its id, so swapping the wrapped
// bytes of two rows makes both fail instead of silently exchanging keys.
func wrapAAD(id uint32) []byte { return fmt.Appendf(nil, "openconsult data key %d", id) }

func wrap(master *MasterKey, id uint32, raw []byte) ([]byte, error) {
	if master.isZero() {
		return nil, errZeroMaster
	}
	aead, err := newAEAD(master.key[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, nonceLen, wrappedLen)
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("wrap data key %d: %w", id, err)
	}
	return aead.Seal(out, out[:nonceLen], raw, wrapAAD(id)), nil
}

// unwrapRaw returns the data key d in clear; the caller clears it.
func unwrapRaw(master *MasterKey, fp string, d DataKey) ([]byte, error) {
	if d.Master != fp {
		return nil, fmt.Errorf("data key %d is wrapped by master key %s, but the master key given is %s", d.ID, d.Master, fp)
	}
	if len(d.Wrapped) != wrappedLen {
		return nil, fmt.Errorf("data key %d: wrapped key has %d bytes, want %d", d.ID, len(d.Wrapped), wrappedLen)
	}
	aead, err := newAEAD(master.key[:])
	if err != nil {
		return nil, err
	}
	raw, err := aead.Open(nil, d.Wrapped[:nonceLen], d.Wrapped[nonceLen:], wrapAAD(d.ID))
	if err != nil {
		return nil, fmt.Errorf("data key %d does not open with master key %s although it names it (altered wrapping?)", d.ID, fp)
	}
	return raw, nil
}

func unwrapAEAD(master *MasterKey, fp string, d DataKey) (cipher.AEAD, error) {
	raw, err := unwrapRaw(master, fp, d)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return newAEAD(raw)
}
