package media

import "time"

// When members join a room together, each one's tracks reach the node
// at its own moment, shortly after its transport is up, and every
// arrival would otherwise start a negotiation with each other member: a
// round trip to that member each, one after the other, since a new offer
// waits for the answer to the last. So a negotiation waits, for at most
// negotiateHold after the first change it carries, while another member
// that offered recently (within memberYoung) still has tracks to come
// that its offer declared; the arrival of each such track negotiates
// again, and the last one's goes out at once.
const (
	negotiateHold = 150 * time.Millisecond
	memberYoung   = 3 * time.Second
)

// markPending notes that the session has track changes to negotiate,
// and when the first of them came; the caller holds sfu.mu.
func (s *Session) markPending() {
	if !s.pending.Swap(true) {
		s.pendingSince.Store(s.sfu.now())
	}
}

// holdFor is how much longer the session's next offer should wait for
// tracks that other members declared and that have not arrived, or 0.
func (s *Session) holdFor() time.Duration {
	now := s.sfu.now()
	left := time.Duration(s.pendingSince.Load() + int64(negotiateHold) - now)
	if left <= 0 {
		return 0
	}
	s.sfu.mu.Lock()
	defer s.sfu.mu.Unlock()
	for _, o := range s.room.sessions {
		if o != s && o.subscribed && now < o.youngUntil && o.publishing > s.room.publishedBy(o) {
			return left
		}
	}
	return 0
}

// publishedBy counts the publications of o that have arrived; the
// caller holds sfu.mu.
func (r *room) publishedBy(o *Session) int {
	n := 0
	for _, pub := range r.pubs {
		if pub.owner == o {
			n++
		}
	}
	return n
}

// negotiateAfter negotiates again once d has passed, unless a wait is
// already under way or the session ends first.
func (s *Session) negotiateAfter(d time.Duration) {
	if !s.holding.CompareAndSwap(false, true) {
		return
	}
	if !s.sfu.goOwned(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		s.holding.Store(false)
		s.negotiate()
	}) {
		s.holding.Store(false)
	}
}
