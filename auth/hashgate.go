package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// ErrBusy means every password-hashing slot stayed taken for the whole
// wait; the page answers 503 with Retry-After and the attempt counts for
// nothing (no failure, no lockout).
var ErrBusy = errors.New("the server is busy; try again in a moment")

// DefaultHashWait is how long a request waits for a hashing slot before
// ErrBusy.
const DefaultHashWait = 2 * time.Second

// HashGate bounds how many password hashes run at once in the process.
// Each argon2id hash holds its memory cost (64 MiB by default) for its
// whole run, so without a bound a burst of sign-ins multiplies that by the
// number of requests in flight. One gate is shared by every hashing path
// (sign-in, password change, reset, setup).
type HashGate struct {
	slots chan struct{}
	wait  time.Duration
}

// NewHashGate lets n hashes run at once (n <= 0: the CPUs available to the
// process); the others wait up to wait for a slot.
func NewHashGate(n int, wait time.Duration) *HashGate {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &HashGate{slots: make(chan struct{}, n), wait: wait}
}

// Size is how many hashes may run at once.
func (g *HashGate) Size() int { return cap(g.slots) }

// acquire takes a slot, waiting at most the gate's wait; release gives it
// back. A nil gate bounds nothing.
func (g *HashGate) acquire(ctx context.Context) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
}

func (g *HashGate) release() { <-g.slots }

// Hash is HashPassword within the gate.
func (g *HashGate) Hash(ctx context.Context, password string, p HashParams) (string, error) {
	release, err := g.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(password, p)
}

// Verify is VerifyPassword within the gate.
func (g *HashGate) Verify(ctx context.Context, password, encoded string, want HashParams) (ok, rehash bool, err error) {
	release, err := g.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	return VerifyPassword(password, encoded, want)
}
