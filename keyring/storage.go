package keyring

import (
	"context"
	"errors"
	"time"
)

// DataKey is a data key as stored: only its wrapped form, never the key.
type DataKey struct {
	ID        uint32
	Wrapped   []byte // nonce | AES-256-GCM(master key, data key, aad "openconsult data key <id>")
	Master    string // fingerprint of the master key that wraps it
	CreatedAt time.Time
	Active    bool // the one key new values are sealed with; the others are retired, kept for reading
}

// Storage keeps the wrapped data keys (store.DB implements it).
//
// The invariants that make rotation safe while servers run are enforced by
// the storage inside its transactions, because only there are the checks
// and the writes atomic: at most one active key, ids never reused, and all
// keys wrapped by the same master key.
type Storage interface {
	// DataKeys returns every data key, ordered by id.
	DataKeys(ctx context.Context) ([]DataKey, error)

	// AddDataKey stores k as the only active key, retiring the others, in
	// one transaction. It fails with an error wrapping ErrKeysChanged, and
	// stores nothing, when k.ID exists or a stored key is wrapped by a
	// master key other than k.Master.
	AddDataKey(ctx context.Context, k DataKey) error

	// RewrapDataKeys replaces the Wrapped and Master of every data key in
	// one transaction. It fails with an error wrapping ErrKeysChanged, and
	// changes nothing, unless keys names exactly the stored data keys and
	// every one of them is stored wrapped by oldMaster.
	RewrapDataKeys(ctx context.Context, oldMaster string, keys []DataKey) error
}

// ErrKeysChanged means the stored data keys are not what the caller read a
// moment ago: another process added a data key or rotated the master key.
var ErrKeysChanged = errors.New("data keys changed concurrently")
