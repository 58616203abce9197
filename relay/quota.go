package relay

import (
	"net"
	"sync"
)

// ledger counts allocations per username and in all, for the quotas and
// for Close, which waits until every allocation is gone.
//
// pion/turn asks its QuotaHandler before it creates an allocation, and the
// creation can still fail afterwards (no free relay port, a LIFETIME of
// zero). Counting in the QuotaHandler alone would leak a slot on each
// failure, and a client could fill the total quota with failing requests.
// So the QuotaHandler reserves a slot under the client's transport address;
// OnAllocationCreated turns the reservation into an allocation, and
// OnAllocationError, which pion reports for a failed Allocate on the same
// read loop before it reads the next request, gives a reservation back.
// Every Allocate of one transport address is handled by one read loop in
// order, so a reservation is settled before the next one for that address.
type ledger struct {
	userQuota, totalQuota int

	mu       sync.Mutex
	perUser  map[string]int      // reserved and created allocations
	total    int                 // the sum of perUser
	pending  map[string][]string // transport address -> usernames reserved
	live     int                 // created and not yet deleted
	drained  chan struct{}       // closed when live drops to zero, while Close waits
	refusals func(quota string)
}

func newLedger(userQuota, totalQuota int, refusals func(string)) *ledger {
	return &ledger{userQuota: userQuota, totalQuota: totalQuota, perUser: map[string]int{},
		pending: map[string][]string{}, refusals: refusals}
}

// addrKey names a client transport address. The protocol is part of it: a
// UDP and a TCP client may share an address and port.
func addrKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.Network() + "|" + a.String()
}

// reserve is the QuotaHandler.
func (l *ledger) reserve(username, _ string, src net.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.totalQuota {
		l.refusals("total")
		return false
	}
	if l.userQuota > 0 && l.perUser[username] >= l.userQuota {
		l.refusals("user")
		return false
	}
	l.perUser[username]++
	l.total++
	k := addrKey(src)
	l.pending[k] = append(l.pending[k], username)
	return true
}

// created settles the reservation of an allocation pion has made.
func (l *ledger) created(src net.Addr, username string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live++
	k := addrKey(src)
	names := l.pending[k]
	for i := len(names) - 1; i >= 0; i-- {
		if names[i] == username {
			l.dropPending(k, i)
			return
		}
	}
	// No reservation: the allocation was made without asking the quota,
	// which pion does not do; count it all the same so deleted balances.
	l.perUser[username]++
	l.total++
}

// failed gives back the reservation of an Allocate that pion could not
// complete. pion reports the failure of any request this way, so a
// failure with nothing reserved is not an Allocate and changes nothing.
func (l *ledger) failed(src net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := addrKey(src)
	names := l.pending[k]
	if len(names) == 0 {
		return
	}
	l.release(names[len(names)-1])
	l.dropPending(k, len(names)-1)
}

// deleted frees the slot of an allocation pion has removed.
func (l *ledger) deleted(username string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(username)
	l.live--
	if l.live <= 0 && l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
}

func (l *ledger) release(username string) {
	if l.perUser[username] <= 1 {
		delete(l.perUser, username)
	} else {
		l.perUser[username]--
	}
	if l.total > 0 {
		l.total--
	}
}

func (l *ledger) dropPending(k string, i int) {
	names := append(l.pending[k][:i], l.pending[k][i+1:]...)
	if len(names) == 0 {
		delete(l.pending, k)
	} else {
		l.pending[k] = names
	}
}

// allocations returns the number of live allocations.
func (l *ledger) allocations() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live
}

// drain returns a channel closed once no allocation is live.
func (l *ledger) drain() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live <= 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if l.drained == nil {
		l.drained = make(chan struct{})
	}
	return l.drained
}
