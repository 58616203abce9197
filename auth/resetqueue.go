package auth

import (
	"context"
	"log/slog"
	"time"
)

// ResetQueue takes password-reset requests and does their work (account
// lookup, audit record, sealed e-mail address, mail) on its own loop, after
// the page has answered: the answer then takes the same time whether the
// account exists, however slow the database or the mail relay. The server
// owns the loop (Run) and stops it at shutdown.
type ResetQueue struct {
	work     func(ctx context.Context, username string, c Client) error
	jobs     chan resetJob
	log      *slog.Logger
	jobLimit time.Duration // one request's work, mail included
	drainFor time.Duration // what queued requests get at shutdown
}

type resetJob struct {
	username string
	client   Client
}

// NewResetQueue returns a queue of up to size requests for s.
func NewResetQueue(s *Service, size int) *ResetQueue {
	return &ResetQueue{work: s.RequestReset, jobs: make(chan resetJob, size), log: s.log,
		jobLimit: time.Minute, drainFor: 5 * time.Second}
}

// RequestReset queues a request and returns at once. A full queue drops
// it: the answer is the same, and the person can ask again.
func (q *ResetQueue) RequestReset(_ context.Context, username string, c Client) error {
	select {
	case q.jobs <- resetJob{username: username, client: c}:
	default:
		q.log.Warn("password reset request dropped: queue full", "size", cap(q.jobs))
	}
	return nil
}

// Run does the queued work until ctx ends, then what is still queued.
// Work goes on for a few seconds after ctx ends, so a request in progress
// or queued at shutdown is finished rather than lost.
func (q *ResetQueue) Run(ctx context.Context) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	context.AfterFunc(ctx, func() {
		t := time.NewTimer(q.drainFor)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	for {
		select {
		case j := <-q.jobs:
			q.do(work, j)
		case <-ctx.Done():
			q.drain(work)
			return
		}
	}
}

func (q *ResetQueue) drain(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case j := <-q.jobs:
			q.do(ctx, j)
		default:
			return
		}
	}
	if n := len(q.jobs); n > 0 {
		q.log.Warn("password reset requests left undone at shutdown", "count", n)
	}
}

func (q *ResetQueue) do(ctx context.Context, j resetJob) {
	ctx, cancel := context.WithTimeout(ctx, q.jobLimit)
	defer cancel()
	if err := q.work(ctx, j.username, j.client); err != nil {
		q.log.Error("password reset request", "err", err)
	}
}
