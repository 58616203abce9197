package acceptloop

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Group is what a listener built on Run owns besides its configuration:
// the listener it accepts from, a context its goroutines stop on, and the
// goroutines themselves (the accept loop and one per connection being
// handled). Close ends them all.
type Group struct {
	base   net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// NewGroup returns the Group of a listener that accepts from base.
func NewGroup(base net.Listener) *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{base: base, ctx: ctx, cancel: cancel}
}

// Context is cancelled by Cancel and Stop.
func (g *Group) Context() context.Context { return g.ctx }

// Cancel cancels Context and leaves base open.
func (g *Group) Cancel() { g.cancel() }

// Go runs f on a goroutine that Wait waits for.
func (g *Group) Go(f func()) { g.wg.Go(f) }

// Stop cancels Context and closes base, once: it returns the error of
// closing base (none if it was closed already), every time.
func (g *Group) Stop() error {
	g.once.Do(func() {
		g.cancel()
		if err := g.base.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			g.err = err
		}
	})
	return g.err
}

// Wait waits for the goroutines started with Go.
func (g *Group) Wait() { g.wg.Wait() }

// Close stops accepting, cancels Context and waits for the goroutines:
// Stop, then Wait.
func (g *Group) Close() error {
	err := g.Stop()
	g.Wait()
	return err
}
