package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Appends are stored in batches (group commit). The log's entries are one
// chain, so every append takes the storage's write lock, which also
// excludes the other processes; one append at a time, each with its own
// transaction and its own durable commit, holds the lock for a commit per
// entry, and under load the queue behind it outgrows a room's deadline for
// its writes. Instead, the appends that arrive while a batch is being
// stored wait together, and the caller first in line stores them all in
// one transaction under one acquisition of the lock, then hands the turn
// to the first of the appends that arrived meanwhile. No goroutine runs
// but the callers', each caller stores at most one batch, and each Append
// returns only once its own entry is committed or refused.

// maxBatch bounds the entries one transaction stores.
const maxBatch = 256

// batchTimeout bounds a batch for callers whose context has no deadline.
const batchTimeout = 30 * time.Second

// appendReq is an entry waiting to be stored.
type appendReq struct {
	ctx  context.Context
	e    Entry
	done chan appendResult // buffered: a result, or the turn to store
}

type appendResult struct {
	e    Entry
	err  error
	lead bool // the waiting caller now stores the next batch
}

// Append completes e with its sequence number, its time (now, but never
// earlier than the previous entry's, so a clock stepping back keeps the
// order) and its link to the previous entry, stores it durably and
// returns it as stored. Text that is not valid UTF-8 is stored with
// U+FFFD in place of the invalid bytes rather than lost. Concurrent
// appends share one transaction.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if e.Type == "" {
		return Entry{}, errors.New("audit append: entry has no type")
	}
	if e.Outcome != Success && e.Outcome != Failure {
		return Entry{}, fmt.Errorf("audit append %s: outcome %q, want %q or %q", e.Type, e.Outcome, Success, Failure)
	}
	req := &appendReq{ctx: ctx, e: sanitize(e), done: make(chan appendResult, 1)}
	l.batchMu.Lock()
	l.queue = append(l.queue, req)
	lead := !l.leading
	l.leading = true
	l.batchMu.Unlock()
	for {
		if lead {
			l.storeBatch()
		}
		r := <-req.done
		if !r.lead {
			return r.e, r.err
		}
		lead = true
	}
}

// storeBatch stores the appends waiting first in line, answers each, and
// hands the turn on.
func (l *Log) storeBatch() {
	l.batchMu.Lock()
	n := min(len(l.queue), maxBatch)
	batch := make([]*appendReq, 0, n)
	for _, r := range l.queue[:n] {
		if err := r.ctx.Err(); err != nil {
			r.done <- appendResult{err: fmt.Errorf("audit append %s: %w", r.e.Type, err)}
			continue
		}
		batch = append(batch, r)
	}
	l.queue = append(l.queue[:0:0], l.queue[n:]...)
	l.batchMu.Unlock()

	if len(batch) > 0 {
		ctx, cancel := batchContext(batch)
		out, errs, err := l.store(ctx, batch)
		cancel()
		for i, r := range batch {
			switch {
			case errs[i] != nil:
				r.done <- appendResult{err: fmt.Errorf("audit append %s: %w", r.e.Type, errs[i])}
			case err != nil:
				r.done <- appendResult{err: fmt.Errorf("audit append %s: %w", r.e.Type, err)}
			default:
				r.done <- appendResult{e: out[i]}
			}
		}
	}

	l.batchMu.Lock()
	defer l.batchMu.Unlock()
	if len(l.queue) == 0 {
		l.leading = false
		return
	}
	l.queue[0].done <- appendResult{lead: true}
}

// batchContext is the context of a batch: it ends at the latest of the
// callers' deadlines (batchTimeout from now for a caller without one), so
// that no caller's entry fails for another's shorter deadline, and a
// caller whose own context ends meanwhile still learns whether its entry
// was stored.
func batchContext(batch []*appendReq) (context.Context, context.CancelFunc) {
	var deadline time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			d = time.Now().Add(batchTimeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), deadline)
}

// store appends the batch's entries in one transaction. It returns them
// as stored, the error of each entry that could not be encoded (which is
// left out), and the transaction's error.
func (l *Log) store(ctx context.Context, batch []*appendReq) ([]Entry, []error, error) {
	out := make([]Entry, len(batch))
	errs := make([]error, len(batch))
	err := l.storage.AuditAppend(ctx, func(last Row) ([]Row, error) {
		rows := make([]Row, 0, len(batch))
		clear(errs)
		var prevTime time.Time
		if last.Seq > 0 {
			// Chain to the stored hash. An unreadable previous entry does
			// not stop the recording of new actions (that would let one
			// edited row halt sign-ins); Verify reports it.
			if prev, err := ParseEntry(last.Canonical); err == nil {
				prevTime = prev.Time
			} else {
				l.logger.Error("audit: previous entry unreadable, appending anyway; run audit verify", "seq", last.Seq)
			}
		}
		for i, r := range batch {
			e := r.e
			e.Seq = last.Seq + 1
			e.Time = l.now().UTC()
			if prevTime.After(e.Time) {
				e.Time = prevTime
			}
			e.Prev = ""
			if last.Seq > 0 {
				e.Prev = hex.EncodeToString(last.LeafHash)
			}
			c, err := e.Canonical()
			if err != nil {
				errs[i] = err
				continue
			}
			row := Row{Seq: e.Seq, Canonical: c, LeafHash: LeafHash(c)}
			rows = append(rows, row)
			out[i], last, prevTime = e, row, e.Time
		}
		if len(rows) == 0 {
			return nil, errors.New("no entry of the batch could be encoded")
		}
		return rows, nil
	})
	return out, errs, err
}
