package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// Consent: a full ICE agent facing a lite one is controlling and keeps
// sending binding requests on the selected pair, every 5 s or so in
// browsers (RFC 7675). A connection that has heard none for
// DisconnectedAfter is disconnected, and for FailedAfter has lost
// consent and fails, as RFC 7675 has it after 30 s.
const (
	DisconnectedAfter = 12 * time.Second
	FailedAfter       = 30 * time.Second
)

// Credentials are one side's ICE username fragment and password.
type Credentials struct {
	Ufrag, Pwd string
}

// Valid reports whether c has the lengths RFC 8839 requires: a ufrag of
// 4 to 256 characters and a password of 22 to 256.
func (c Credentials) Valid() bool {
	return len(c.Ufrag) >= 4 && len(c.Ufrag) <= 256 && len(c.Pwd) >= 22 && len(c.Pwd) <= 256
}

// iceLite is the node's side of ICE as a lite agent (RFC 8445 section
// 2.5): it gathers only host candidates, sends no checks, and answers
// the remote agent's binding requests; the pair the remote agent
// nominates (USE-CANDIDATE) carries the media. It runs on the goroutine
// that delivers datagrams, with no goroutine of its own.
type iceLite struct {
	mu       sync.Mutex
	local    Credentials
	remote   Credentials // the remote ufrag checks USERNAME; its password is not needed by a lite agent
	selected netip.AddrPort
	lastSeen time.Time // the last valid binding request on the selected pair
	now      func() time.Time
}

// errICE is wrapped by every binding request the agent refuses.
var errICE = errors.New("ice")

// checkResult is what a valid binding request did.
type checkResult struct {
	response  []byte
	nominated bool // the request nominated its pair, now selected
}

// handle answers a binding request from addr. A request that is not for
// this agent's credentials, or fails MESSAGE-INTEGRITY or FINGERPRINT,
// gets no answer, as RFC 8445 section 7.3 allows; its error says why.
func (a *iceLite) handle(p []byte, from netip.AddrPort) (checkResult, error) {
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if err := m.Decode(); err != nil {
		return checkResult{}, fmt.Errorf("%w: not a STUN message: %v", errICE, err)
	}
	if m.Type != stun.BindingRequest {
		return checkResult{}, nil // responses and indications need no answer
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		return checkResult{}, fmt.Errorf("%w: fingerprint: %v", errICE, err)
	}
	a.mu.Lock()
	local, remote := a.local, a.remote
	a.mu.Unlock()
	var user stun.Username
	if err := user.GetFrom(m); err != nil {
		return checkResult{}, fmt.Errorf("%w: username: %v", errICE, err)
	}
	// USERNAME is "ours:theirs". Checks may arrive before the remote
	// description that names theirs, from an answerer.
	ours := []byte(local.Ufrag + ":")
	named := bytes.HasPrefix(user, ours)
	if remote.Ufrag != "" {
		named = named && string(user[len(ours):]) == remote.Ufrag
	}
	if !named {
		return checkResult{}, fmt.Errorf("%w: username names other credentials", errICE)
	}
	if err := stun.NewShortTermIntegrity(local.Pwd).Check(m); err != nil {
		return checkResult{}, fmt.Errorf("%w: message integrity: %v", errICE, err)
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		stun.NewShortTermIntegrity(local.Pwd), stun.Fingerprint)
	if err != nil {
		return checkResult{}, fmt.Errorf("%w: response: %v", errICE, err)
	}
	nominated := m.Contains(stun.AttrUseCandidate)
	a.mu.Lock()
	if nominated {
		a.selected = from
	}
	if a.selected == from {
		a.lastSeen = a.now()
	}
	a.mu.Unlock()
	return checkResult{response: resp.Raw, nominated: nominated}, nil
}

// setCredentials sets both sides' credentials; new ones (an ICE restart)
// keep the selected pair until the remote agent nominates another.
func (a *iceLite) setCredentials(local, remote Credentials) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.local, a.remote = local, remote
}

// pair returns the selected remote address, and when it was last
// checked; ok is false before the remote agent nominated one.
func (a *iceLite) pair() (addr netip.AddrPort, lastSeen time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.selected, a.lastSeen, a.selected.IsValid()
}
