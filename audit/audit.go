// Package audit owns the platform's tamper-evident audit log: every
// security-relevant event (sign-ins, lockouts, second-factor and password
// changes, account administration, consult sessions, shared documents,
// recordings, exports of the log itself) as an Entry that is written
// durably before the action it records is acknowledged.
//
// Each entry is stored as canonical JSON carrying the hash of the entry
// before it, and is a leaf of an RFC 6962 Merkle tree whose root is signed
// with Ed25519 in the C2SP tlog-checkpoint note format, periodically and at
// every export. Verify recomputes all of it from storage and names the
// first entry that was altered, inserted, removed or reordered; a JSON
// export carries a signed checkpoint and inclusion proofs, so VerifyExport
// checks it offline with only the public key.
//
// The package owns the format, the hashing, the signing and the checks;
// persistence is behind Storage, which package store implements.
package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Row is an entry as stored: its sequence number, its canonical JSON and
// the RFC 6962 leaf hash of that JSON.
type Row struct {
	Seq       uint64
	Canonical []byte
	LeafHash  []byte
}

// StoredCheckpoint is a signed checkpoint note as stored.
type StoredCheckpoint struct {
	Size      uint64 // tree size the note states
	Note      []byte // the signed note, exactly as signed
	CreatedAt time.Time
}

// Source is what verification reads.
type Source interface {
	// AuditRows calls fn for every stored row with Seq >= from in
	// ascending order, stopping at and returning fn's first error.
	AuditRows(ctx context.Context, from uint64, fn func(Row) error) error
	// AuditCheckpoints returns at most limit stored checkpoints with a
	// size greater than after, by ascending size.
	AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]StoredCheckpoint, error)
}

// Storage keeps the log.
type Storage interface {
	Source
	// AuditAppend calls build with the stored row of the highest Seq (the
	// zero Row when there is none) inside one write transaction that
	// excludes every other AuditAppend, also from other processes, stores
	// the rows build returns (numbered on from last, in order), and returns
	// once they are durably committed. An error from build rolls back and
	// is returned.
	AuditAppend(ctx context.Context, build func(last Row) ([]Row, error)) error
	// AddAuditCheckpoint stores a signed checkpoint; one already stored for
	// the same size is kept.
	AddAuditCheckpoint(ctx context.Context, c StoredCheckpoint) error
	// LatestAuditCheckpoint returns the stored checkpoint of the greatest
	// size, and false when there is none.
	LatestAuditCheckpoint(ctx context.Context) (StoredCheckpoint, bool, error)
}

// ErrInconsistent reports stored entries that do not form a valid log; no
// checkpoint is signed over them. Verify names the entry at fault.
var ErrInconsistent = errors.New("audit log inconsistent")

// Log appends entries and signs checkpoints. It is safe for concurrent use.
type Log struct {
	storage Storage
	signer  *Signer
	now     func() time.Time
	logger  *slog.Logger

	// batchMu guards the appends waiting in this process (batch.go); the
	// storage's write lock serialises the batches across processes.
	batchMu sync.Mutex
	queue   []*appendReq
	leading bool // a caller is storing a batch

	// treeMu guards the running tree of the entries read so far, which
	// checkpoints extend with the rows stored since (by any process).
	treeMu sync.Mutex
	tree   *runningTree
	tip    []byte // leaf hash of the tree's last entry
	// anchor is the newest checkpoint kept outside the database (read at
	// Start, then each one signed here), which the log must extend.
	anchor     *Checkpoint
	anchorFrom string

	file       *CheckpointFile // nil: checkpoints stay in the database only
	publishers []Publisher

	alarmMu sync.Mutex
	alarm   error // set once the log contradicts an external checkpoint
}

// Publisher receives each signed checkpoint note after it is stored. It
// must not block: a slow destination queues the note and sends it from
// its own goroutine (Forwarder).
type Publisher interface {
	Publish(note []byte)
}

// Option adjusts a Log.
type Option func(*Log)

// WithLogger sets where the checkpoint loop reports failures (default
// slog.Default()). Messages carry sequence numbers and sizes, never entry
// contents.
func WithLogger(l *slog.Logger) Option { return func(lg *Log) { lg.logger = l } }

// WithCheckpointFile appends every checkpoint to f, outside the database,
// before it counts as issued; Start reads f's newest checkpoint and the
// log refuses to sign a checkpoint that does not extend it.
func WithCheckpointFile(f *CheckpointFile) Option { return func(lg *Log) { lg.file = f } }

// WithPublisher also hands every signed checkpoint to p (syslog, a
// witness).
func WithPublisher(p Publisher) Option {
	return func(lg *Log) { lg.publishers = append(lg.publishers, p) }
}

// New returns a log kept in storage that signs checkpoints with signer and
// dates entries with now (time.Now when nil).
func New(storage Storage, signer *Signer, now func() time.Time, opts ...Option) *Log {
	if now == nil {
		now = time.Now
	}
	l := &Log{storage: storage, signer: signer, now: now, logger: slog.Default(), tree: newRunningTree()}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Checkpoint signs and stores a checkpoint of the whole log as it is now.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	l.treeMu.Lock()
	defer l.treeMu.Unlock()
	cp, _, err := l.checkpointLocked(ctx)
	return cp, err
}

// CheckpointIfGrown signs and stores a checkpoint when the log has grown
// beyond the newest one (in the checkpoint file when the log has one, in
// the database otherwise), and reports whether it did.
func (l *Log) CheckpointIfGrown(ctx context.Context) (bool, error) {
	l.treeMu.Lock()
	defer l.treeMu.Unlock()
	return l.checkpointIfGrownLocked(ctx)
}

func (l *Log) checkpointIfGrownLocked(ctx context.Context) (bool, error) {
	if err := l.catchUp(ctx); err != nil {
		return false, fmt.Errorf("audit checkpoint: %w", err)
	}
	latest, ok, err := l.storage.LatestAuditCheckpoint(ctx)
	if err != nil {
		return false, fmt.Errorf("audit checkpoint: %w", err)
	}
	// With a checkpoint file, the last checkpoint is the file's newest,
	// so that a new file (or one behind the database's) catches up.
	last := uint64(0)
	switch {
	case l.file != nil && l.anchor != nil:
		last = l.anchor.Size
	case l.file == nil && ok:
		last = latest.Size
	}
	if l.tree.size() == 0 || l.tree.size() <= last && l.Alarm() == nil {
		return false, nil
	}
	_, _, err = l.checkpointLocked(ctx)
	return err == nil, err
}

// Run issues a checkpoint at once and then every interval, each time the
// log has grown, until ctx is done. Its caller owns the goroutine it runs
// in; Run returns when ctx is cancelled.
func (l *Log) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		l.logger.Warn("audit: periodic checkpoints disabled", "interval", every)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := l.CheckpointIfGrown(ctx); err != nil && ctx.Err() == nil {
			l.logger.Error("audit: checkpoint not issued", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkpointLocked signs the tree after reading the rows stored since the
// last call, writes the checkpoint outside the database, stores it and
// hands it to the publishers. It refuses while the log contradicts an
// external checkpoint. The caller holds treeMu.
func (l *Log) checkpointLocked(ctx context.Context) (Checkpoint, []byte, error) {
	if l.signer == nil {
		return Checkpoint{}, nil, errors.New("audit checkpoint: no signing key")
	}
	if err := l.catchUp(ctx); err != nil {
		return Checkpoint{}, nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	if l.tree.size() == 0 {
		return Checkpoint{}, nil, errors.New("audit checkpoint: the log is empty")
	}
	l.checkAnchor()
	if err := l.Alarm(); err != nil {
		return Checkpoint{}, nil, fmt.Errorf("audit checkpoint refused: %w", err)
	}
	cp := Checkpoint{Origin: l.signer.Origin(), Size: l.tree.size(), Root: l.tree.root()}
	signed, err := l.signer.Sign(cp)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if l.file != nil {
		if err := l.file.Append(signed); err != nil {
			return Checkpoint{}, nil, fmt.Errorf("audit checkpoint of %d entries: %w", cp.Size, err)
		}
		l.anchor, l.anchorFrom = &cp, l.file.Path()
	}
	if err := l.storage.AddAuditCheckpoint(ctx, StoredCheckpoint{Size: cp.Size, Note: signed, CreatedAt: l.now().UTC()}); err != nil {
		return Checkpoint{}, nil, fmt.Errorf("audit checkpoint of %d entries: %w", cp.Size, err)
	}
	for _, p := range l.publishers {
		p.Publish(signed)
	}
	l.logger.Debug("audit checkpoint issued", "size", cp.Size)
	return cp, signed, nil
}

// catchUp extends the running tree with the rows stored since it was last
// extended, checking each as Verify does, so that a checkpoint never puts
// a signature on a broken log. Leaves are recomputed from the entries, not
// taken from storage. Reaching the size of the external checkpoint, the
// tree must have its root. The last entry read before is read again: one
// removed or changed since is a contradiction when a checkpoint kept
// outside covers it. The caller holds treeMu.
func (l *Log) catchUp(ctx context.Context) error {
	size := l.tree.size()
	from, seenTip := size, size == 0
	if seenTip {
		from = 1
	}
	err := l.storage.AuditRows(ctx, from, func(r Row) error {
		if !seenTip {
			seenTip = true
			if r.Seq != size || !bytes.Equal(LeafHash(r.Canonical), l.tip) {
				return l.lost(size)
			}
			return nil
		}
		want := l.tree.size() + 1
		if r.Seq != want {
			return fmt.Errorf("%w: entry %d missing, found %d", ErrInconsistent, want, r.Seq)
		}
		e, err := ParseEntry(r.Canonical)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrInconsistent, r.Seq, err)
		}
		leaf := LeafHash(r.Canonical)
		if e.Seq != r.Seq || string(leaf) != string(r.LeafHash) || e.Prev != hex.EncodeToString(l.tip) {
			return fmt.Errorf("%w: entry %d does not match its number, hash or predecessor", ErrInconsistent, r.Seq)
		}
		l.tree.append(leaf)
		l.tip = leaf
		if a := l.anchor; a != nil && a.Size == l.tree.size() && !bytes.Equal(a.Root, l.tree.root()) {
			l.raise(fmt.Errorf("%w: entries 1 to %d do not match the checkpoint of %d entries in %s: the log was rewritten",
				ErrContradicted, a.Size, a.Size, l.anchorFrom))
		}
		return nil
	})
	if err == nil && !seenTip {
		err = l.lost(size)
	}
	if err != nil {
		return fmt.Errorf("read audit entries: %w", err)
	}
	return nil
}

// lost reports that entry seq, read before, is gone or changed, raising
// the alarm when the external checkpoint covers it. The caller holds
// treeMu.
func (l *Log) lost(seq uint64) error {
	if a := l.anchor; a != nil && seq <= a.Size {
		err := fmt.Errorf("%w: entry %d, covered by the checkpoint of %d entries in %s, was removed or changed while the log ran",
			ErrContradicted, seq, a.Size, l.anchorFrom)
		l.raise(err)
		return err
	}
	return fmt.Errorf("%w: entry %d was removed or changed since it was read", ErrInconsistent, seq)
}

// Entries returns the newest entries matching f, newest first, at most
// limit of them. An entry that no longer decodes is listed with its number
// and a note instead of hiding it, whatever the filter.
func (l *Log) Entries(ctx context.Context, f Filter, limit int) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	ring := make([]Entry, 0, limit)
	err := l.storage.AuditRows(ctx, 0, func(r Row) error {
		e, err := ParseEntry(r.Canonical)
		if err != nil {
			e = Entry{Seq: r.Seq, Message: "(this entry is unreadable: it was altered; see the verification)"}
		} else if !f.match(e) {
			return nil
		}
		if len(ring) == limit {
			copy(ring, ring[1:])
			ring = ring[:limit-1]
		}
		ring = append(ring, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	for i, j := 0, len(ring)-1; i < j; i, j = i+1, j-1 {
		ring[i], ring[j] = ring[j], ring[i]
	}
	return ring, nil
}

// Verify checks the stored log with the log's own verifier key, against
// the newest record of its checkpoint file too. An auditor should use the
// package-level Verify with the key they hold.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	if l.signer == nil {
		return Report{}, errors.New("audit verify: no signing key")
	}
	var exts []ExternalCheckpoint
	if l.file != nil {
		var err error
		if exts, err = ReadCheckpointFile(l.file.Path(), l.signer.VerifierKey()); err != nil {
			return Report{}, fmt.Errorf("audit verify: %w", err)
		}
	}
	return Verify(ctx, l.storage, l.signer.VerifierKey(), exts...)
}

// VerifierKey is the public key auditors verify checkpoints and exports
// with.
func (l *Log) VerifierKey() string {
	if l.signer == nil {
		return ""
	}
	return l.signer.VerifierKey()
}
