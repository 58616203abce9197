// Package audit owns the tamper-evident audit log: every security-relevant
// event as a canonical JSON entry with a sequence number, chained to the
// previous entry by its hash, written durably before the action it records
// is acknowledged, and leaves of an RFC 6962 Merkle tree whose root is
// signed (Ed25519, C2SP tlog-checkpoint note format) periodically and at
// every export.
//
// Verification recomputes every entry's hash, its link to the previous
// entry and the tree, and checks the signed checkpoints, so an edited,
// inserted, removed or reordered entry is found and named, also offline on
// an export with only the public key.
package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Types of entries. Callers may add others; these are the ones the
// platform writes.
const (
	TypeSignIn              = "signin"
	TypeLockout             = "lockout"
	TypeTOTPEnrolled        = "totp.enrolled"
	TypeTOTPReset           = "totp.reset"
	TypePasswordChanged     = "password.changed"
	TypePasswordReset       = "password.reset"
	TypeUserCreated         = "user.created"
	TypeUserDisabled        = "user.disabled"
	TypeSessionsRevoked     = "sessions.revoked"
	TypeSessionRequest      = "session.request"
	TypeSessionAccepted     = "session.accepted"
	TypeSessionAborted      = "session.aborted"
	TypeSessionEnded        = "session.ended"
	TypeDocumentShared      = "document.shared"
	TypeRecordingStarted    = "recording.started"
	TypeRecordingStopped    = "recording.stopped"
	TypeRecordingDownloaded = "recording.downloaded"
	TypeAuditExported       = "audit.exported"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
)

// Entry is one audit record. Its canonical form is the JSON encoding of
// this struct: fixed field order, map keys sorted, UTC times.
type Entry struct {
	Seq       uint64            `json:"seq"`
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"`
	Outcome   string            `json:"outcome"`
	Requester string            `json:"requester"`
	Room      string            `json:"room,omitempty"`
	Message   string            `json:"message"`
	SourceIP  string            `json:"source_ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"`
	// Prev is the leaf hash of the previous entry (hex), so removing or
	// reordering entries breaks the chain at a nameable place.
	Prev string `json:"prev"`
}

// Canonical returns the entry's canonical JSON.
func (e Entry) Canonical() []byte {
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("audit: encode entry: %v", err)) // only strings and a time
	}
	return b
}

// LeafHash is the RFC 6962 leaf hash of canonical entry bytes.
func LeafHash(canonical []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(canonical) }

// Row is an entry as stored.
type Row struct {
	Seq       uint64
	Canonical []byte
	LeafHash  []byte
}

// Storage keeps the log. Append runs build inside one write transaction
// with the last stored row (zero Row when empty), so sequence numbers stay
// gapless across processes.
type Storage interface {
	AuditAppend(ctx context.Context, build func(last Row) (Row, error)) error
	AuditRows(ctx context.Context, from uint64, fn func(Row) error) error
	AuditCheckpoints(ctx context.Context) ([]StoredCheckpoint, error)
	AddAuditCheckpoint(ctx context.Context, c StoredCheckpoint) error
}

// StoredCheckpoint is a signed checkpoint note as stored.
type StoredCheckpoint struct {
	Size      uint64
	Note      []byte
	CreatedAt time.Time
}

// Log appends entries.
type Log struct {
	storage Storage
	now     func() time.Time
	mu      sync.Mutex
	signer  *Signer
}

// New returns a log over storage that signs checkpoints with signer.
func New(storage Storage, signer *Signer, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{storage: storage, signer: signer, now: now}
}

// Append completes e (sequence number, time never earlier than the previous
// entry's, link to the previous entry), stores it durably and returns it.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if e.Type == "" || (e.Outcome != Success && e.Outcome != Failure) {
		return Entry{}, errors.New("audit: entry needs a type and an outcome")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out Entry
	err := l.storage.AuditAppend(ctx, func(last Row) (Row, error) {
		e.Seq = last.Seq + 1
		e.Time = l.now().UTC()
		e.Prev = ""
		if last.Seq > 0 {
			var prev Entry
			if err := json.Unmarshal(last.Canonical, &prev); err != nil {
				return Row{}, fmt.Errorf("audit: previous entry %d unreadable: %w", last.Seq, err)
			}
			if e.Time.Before(prev.Time) {
				e.Time = prev.Time // a clock stepping back keeps the order
			}
			e.Prev = hex.EncodeToString(last.LeafHash)
		}
		c := e.Canonical()
		out = e
		return Row{Seq: e.Seq, Canonical: c, LeafHash: LeafHash(c)}, nil
	})
	if err != nil {
		return Entry{}, fmt.Errorf("audit append %s: %w", e.Type, err)
	}
	return out, nil
}

// Run issues a signed checkpoint every interval when the log grew, until
// ctx is done.
func (l *Log) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = l.CheckpointIfGrown(ctx)
		}
	}
}

// CheckpointIfGrown signs a checkpoint when entries were added since the
// last one.
func (l *Log) CheckpointIfGrown(ctx context.Context) (bool, error) {
	cps, err := l.storage.AuditCheckpoints(ctx)
	if err != nil {
		return false, err
	}
	size, _, err := l.tree(ctx)
	if err != nil {
		return false, err
	}
	if size == 0 || len(cps) > 0 && cps[len(cps)-1].Size >= size {
		return false, nil
	}
	_, err = l.Checkpoint(ctx)
	return err == nil, err
}

// Checkpoint signs and stores the current tree head.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size, root, err := l.tree(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	cp := Checkpoint{Origin: l.signer.Origin(), Size: size, Root: root}
	note, err := l.signer.Sign(cp)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := l.storage.AddAuditCheckpoint(ctx, StoredCheckpoint{Size: size, Note: note, CreatedAt: l.now().UTC()}); err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	return cp, nil
}

// tree computes the size and root of the whole log.
func (l *Log) tree(ctx context.Context) (uint64, []byte, error) {
	t := newTree()
	err := l.storage.AuditRows(ctx, 1, func(r Row) error {
		t.append(r.LeafHash)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return t.size(), t.root(), nil
}

// Entries returns the newest entries matching f, newest first, at most
// limit of them.
func (l *Log) Entries(ctx context.Context, f Filter, limit int) ([]Entry, error) {
	ring := make([]Entry, 0, limit)
	err := l.storage.AuditRows(ctx, 1, func(r Row) error {
		var e Entry
		if err := json.Unmarshal(r.Canonical, &e); err != nil {
			return fmt.Errorf("audit entry %d: %w", r.Seq, err)
		}
		if !f.match(e) {
			return nil
		}
		if len(ring) == limit {
			copy(ring, ring[1:])
			ring = ring[:limit-1]
		}
		ring = append(ring, e)
		return nil
	})
	for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
		ring[i], ring[j] = ring[j], ring[i]
	}
	return ring, err
}

// Verify checks the log with the signer's own key.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	return Verify(ctx, l.storage, l.signer.VerifierKey())
}

// VerifierKey is the public key auditors verify checkpoints with.
func (l *Log) VerifierKey() string { return l.signer.VerifierKey() }
