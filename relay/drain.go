package relay

import (
	"context"
	"errors"
	"fmt"
)

// Shutdown drains the relay for a rolling update: from now on every
// Allocate is refused with 508 Insufficient Capacity, so clients gather
// their relay candidates from another relay, while the allocations already
// open go on relaying and refreshing. Once the last one is gone, or when
// ctx ends, Shutdown closes the relay as Close does. It returns ctx's error
// when allocations were still open then, joined with Close's.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	var waitErr error
	select {
	case <-s.ledger.drain():
	case <-ctx.Done():
		waitErr = fmt.Errorf("relay: %d allocations still open: %w", s.Allocations(), ctx.Err())
	}
	return errors.Join(waitErr, s.Close())
}

// Drain makes the relay refuse new allocations from now on; the open ones
// go on. Shutdown calls it; it is there on its own for a caller that waits
// in its own way.
func (s *Server) Drain() {
	if !s.draining.Swap(true) {
		s.log.Info("relay draining: new allocations are refused", "allocations", s.Allocations())
	}
}

// Draining reports whether the relay refuses new allocations, for a
// readiness check.
func (s *Server) Draining() bool { return s.draining.Load() }
