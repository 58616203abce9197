package sfulink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// inbox is what the node sent for one remote session or recording, queued
// to be delivered in order on a goroutine of its own, so that a slow
// receiver holds up neither the link's reader nor the link's other
// sessions and recordings. Its owner embeds it and may keep fields of its
// own under mu.
type inbox[E any] struct {
	wake chan struct{}
	// quiet drops the reason of an end that came before the node
	// confirmed: the call that opened it fails instead.
	quiet   bool
	cleared atomic.Bool // queued entries are dropped, even those being delivered

	mu        sync.Mutex
	queue     []E
	confirmed bool  // the node confirmed the session or recording
	finished  bool  // nothing more comes from the node
	final     error // why it ended, reported after the queue
}

func (q *inbox[E]) init(quiet bool) {
	q.wake, q.quiet = make(chan struct{}, 1), quiet
}

// confirm marks the node's success, on the read loop (see pendingCall).
// It may come after the caller gave up and dropped the inbox (the read
// loop took the result as the caller's context ended): the caller's
// error stands, and the receiver hears no end.
func (q *inbox[E]) confirm() {
	q.mu.Lock()
	if !q.finished {
		q.confirmed = true
	}
	q.mu.Unlock()
}

// enqueue queues e unless the inbox is finished. With limit entries
// waiting already it queues nothing and finishes the inbox instead, for
// the reason flood returns (given how many wait); it then reports true.
func (q *inbox[E]) enqueue(e E, limit int, flood func(queued int) error) (flooded bool) {
	q.mu.Lock()
	switch {
	case q.finished:
	case len(q.queue) >= limit:
		flooded = true
		q.finished, q.final = true, flood(len(q.queue))
		if q.quiet && !q.confirmed {
			q.final = nil
		}
	default:
		q.queue = append(q.queue, e)
	}
	q.mu.Unlock()
	q.signal()
	return flooded
}

func (q *inbox[E]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// finish ends the inbox after what is queued, for reason.
func (q *inbox[E]) finish(reason error) {
	q.mu.Lock()
	if !q.finished {
		q.finished, q.final = true, reason
		if q.quiet && !q.confirmed {
			q.final = nil
		}
	}
	q.mu.Unlock()
	q.signal()
}

// drop ends the inbox silently and at once, dropping what is queued; it
// reports whether the inbox had finished already.
func (q *inbox[E]) drop() (already bool) {
	q.mu.Lock()
	already = q.finished
	q.finished, q.confirmed, q.final, q.queue = true, false, nil, nil
	q.cleared.Store(true)
	q.mu.Unlock()
	q.signal()
	return already
}

// run hands each queued entry to apply, in order, until the inbox is
// finished and delivered; taken, if set, runs under mu whenever the queue
// is taken. It returns why the inbox ended and whether the node had
// confirmed it.
func (q *inbox[E]) run(apply func(*E), taken func()) (final error, confirmed bool) {
	var spare []E
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			finished, final, confirmed := q.finished, q.final, q.confirmed
			q.mu.Unlock()
			if finished {
				return final, confirmed
			}
			<-q.wake
			continue
		}
		batch := q.queue
		q.queue = spare[:0]
		if taken != nil {
			taken()
		}
		q.mu.Unlock()
		for i := range batch {
			if q.cleared.Load() {
				break
			}
			apply(&batch[i])
		}
		clear(batch)
		spare = batch
	}
}

// registry holds a link's sessions or recordings by their id on it until
// the link ends; each one added counts in live until its delivery
// goroutine ends.
type registry[K comparable, V any] struct {
	live *sync.WaitGroup

	mu    sync.Mutex
	ended error // why the link ended; nil while up
	m     map[K]V
}

func newRegistry[K comparable, V any](live *sync.WaitGroup) *registry[K, V] {
	return &registry[K, V]{live: live, m: map[K]V{}}
}

// add registers v, unless the link ended; the caller then starts v's
// delivery goroutine.
func (r *registry[K, V]) add(k K, v V) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended != nil {
		return r.ended
	}
	r.m[k] = v
	r.live.Add(1)
	return nil
}

func (r *registry[K, V]) get(k K) V {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[k]
}

// take removes k and returns what it held.
func (r *registry[K, V]) take(k K) V {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.m[k]
	delete(r.m, k)
	return v
}

// end refuses what is added from now on and returns what is registered.
func (r *registry[K, V]) end(reason error) map[K]V {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m
	r.ended, r.m = reason, nil
	return m
}

// confirmedOpen reports whether the node confirmed the inbox and had not
// ended it by then.
func (q *inbox[E]) confirmedOpen() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.confirmed
}

// opening is a session or recording that a request asks the node for.
type opening interface {
	confirm()
	confirmedOpen() bool
	discard()
}

// errEndedUnconfirmed is a join or record request whose session or
// recording the node ended before its successful result, which the
// protocol forbids: it is refused rather than handed back already ended,
// since the receiver would never hear of its end.
var errEndedUnconfirmed = errors.New("the node ended it before confirming it")

// errNoReply is a request the node took but did not answer in time.
var errNoReply = errors.New("no reply from the node")

// open sends req, whose success confirms x on the read loop; the reply is
// awaited for the client's reply timeout at most, however long ctx lasts.
// A failure discards x; a request abandoned before its reply is undone
// with undo, since the node may have acted on it after all.
func (l *clientLink) open(ctx context.Context, req, undo message, x opening) error {
	wait := l.c.replyWait()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := l.call(rctx, req, x.confirm); err != nil {
		x.discard()
		if rctx.Err() != nil {
			l.ep.send(undo)
		}
		if ctx.Err() == nil && rctx.Err() != nil {
			err = fmt.Errorf("sfulink: node %s did not answer a %s within %s: %w (%w)", l.c.url, req.Type, wait, errNoReply, context.DeadlineExceeded)
		}
		return err
	}
	if !x.confirmedOpen() {
		x.discard()
		return fmt.Errorf("sfulink: node %s answered a %s: %w", l.c.url, req.Type, errEndedUnconfirmed)
	}
	return nil
}
