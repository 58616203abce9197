package keyring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// RotateMaster re-wraps every data key under next in one transaction. The
// data keys themselves do not change, so no sealed value is touched and
// running servers, which hold the unwrapped data keys, keep working; each
// needs next only at its next start. It returns how many data keys were
// re-wrapped. It fails, changing nothing, when old does not wrap every data
// key; a data key added concurrently makes it read the keys again.
func RotateMaster(ctx context.Context, s Storage, old, next MasterKey) (int, error) {
	// old and next are this call's own copies.
	defer old.Wipe()
	defer next.Wipe()
	if old.isZero() || next.isZero() {
		return 0, errZeroMaster
	}
	if old.Equal(next) {
		return 0, errors.New("rotate master key: the new master key is the current one")
	}
	oldFP, nextFP := old.Fingerprint(), next.Fingerprint()
	for range attempts {
		stored, err := s.DataKeys(ctx)
		if err != nil {
			return 0, fmt.Errorf("rotate master key: read data keys: %w", err)
		}
		out := make([]DataKey, 0, len(stored))
		for _, d := range stored {
			if d.Master == nextFP {
				return 0, fmt.Errorf("rotate master key: data key %d is already wrapped by the new master key %s", d.ID, nextFP)
			}
			raw, err := unwrapRaw(&old, oldFP, d)
			if err != nil {
				return 0, fmt.Errorf("rotate master key: %w", err)
			}
			d.Wrapped, err = wrap(&next, d.ID, raw)
			clear(raw)
			if err != nil {
				return 0, fmt.Errorf("rotate master key: %w", err)
			}
			d.Master = nextFP
			out = append(out, d)
		}
		err = s.RewrapDataKeys(ctx, oldFP, out)
		if err == nil {
			return len(out), nil
		}
		if !errors.Is(err, ErrKeysChanged) {
			return 0, fmt.Errorf("rotate master key: re-wrap data keys: %w", err)
		}
	}
	return 0, fmt.Errorf("rotate master key: %w", ErrKeysChanged)
}

// RotateMasterToKeyFile creates a new master key in a key file at path
// (which must not exist) under passphrase, then re-wraps every data key
// under it with RotateMaster, and returns the new key and the number of
// data keys re-wrapped. If the rotation fails and the stored data keys are
// provably not wrapped by the new key, the new file is removed; otherwise
// (for example a commit whose outcome is unknown) it is kept, since
// deleting it could lose the only copy of the key that now wraps the data.
func RotateMasterToKeyFile(ctx context.Context, s Storage, old MasterKey, path, passphrase string, opts ...KeyFileOption) (MasterKey, int, error) {
	next, err := NewKeyFile(path, passphrase, opts...)
	if err != nil {
		return MasterKey{}, 0, err
	}
	n, err := RotateMaster(ctx, s, old, next)
	if err == nil {
		return next, n, nil
	}
	fp := next.Fingerprint()
	next.Wipe()
	checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	stored, rerr := s.DataKeys(checkCtx)
	if rerr == nil && !wrappedBy(stored, fp) {
		if rmErr := os.Remove(path); rmErr == nil {
			return MasterKey{}, 0, err
		}
	}
	return MasterKey{}, 0, fmt.Errorf("%w; the new key file %s (master key %s) was kept because data keys may be wrapped by it: compare their master fingerprint before deleting it", err, path, fp)
}

func wrappedBy(keys []DataKey, fp string) bool {
	for _, d := range keys {
		if d.Master == fp {
			return true
		}
	}
	return false
}

// KeyInfo describes a data key without its material.
type KeyInfo struct {
	ID        uint32
	Master    string // fingerprint of the master key that wraps it
	CreatedAt time.Time
	Active    bool
}

// Status is what an operator needs to see about the data keys: ids, which
// master key wraps them, which one is active. It never holds key material,
// wrapped or not.
type Status struct {
	Keys     []KeyInfo      // ordered by id
	Active   uint32         // id of the active data key, 0 if none
	ByMaster map[string]int // number of data keys per master key fingerprint
}

// ReadStatus reads the data keys' status. It needs no master key, so it
// works for an operator checking which master key a database expects.
func ReadStatus(ctx context.Context, s Storage) (Status, error) {
	stored, err := s.DataKeys(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("key status: %w", err)
	}
	st := Status{Keys: make([]KeyInfo, 0, len(stored)), ByMaster: map[string]int{}}
	for _, d := range stored {
		st.Keys = append(st.Keys, KeyInfo{ID: d.ID, Master: d.Master, CreatedAt: d.CreatedAt, Active: d.Active})
		st.ByMaster[d.Master]++
		if d.Active {
			st.Active = d.ID
		}
	}
	return st, nil
}

// Describe returns the stored data keys with their wrapped bytes removed.
func Describe(ctx context.Context, s Storage) ([]DataKey, error) {
	keys, err := s.DataKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe data keys: %w", err)
	}
	for i := range keys {
		keys[i].Wrapped = nil
	}
	return keys, nil
}
