package sdpneg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Defaults of the limits on remote descriptions: the signaling server
// relays descriptions up to 433 KiB, sized for 64 publishers' sections as
// Chromium writes them.
const (
	DefaultMaxBytes    = 448 << 10
	DefaultMaxSections = 320
)

// Config is the node's side of one member's negotiation.
type Config struct {
	// Ufrag and Pwd are the node's ICE credentials (RFC 8839: 4 to 256
	// and 22 to 256 characters).
	Ufrag, Pwd string
	// Fingerprints are those of the node's DTLS certificate.
	Fingerprints []Fingerprint
	// Candidates are the node's host candidates as in a=candidate,
	// "candidate:..." without "a=".
	Candidates []string
	// MaxBytes and MaxSections bound the remote descriptions accepted; 0
	// is the default.
	MaxBytes, MaxSections int
}

type limits struct{ maxBytes, maxSections int }

// Negotiator is the node's offer/answer state with one member.
type Negotiator struct {
	cfg    Config
	lim    limits
	state  SignalingState
	cur    []*section // as of the last completed negotiation
	next   []*section // proposed by the pending offer
	remote *Transport // the member's, as of the last completed negotiation
	// pendingRemote is the transport of a pending remote description.
	pendingRemote *Transport
	role          Setup // the node's DTLS role once negotiated
	pendingRole   Setup
	wanted        []*Track        // tracks to send, in the order added
	usedMids      map[string]bool // every mid either side ever used
	sessionID     uint64
	version       uint64
}

// New returns a negotiator for one member.
func New(cfg Config) (*Negotiator, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("sdpneg: %w", err)
	}
	lim := limits{maxBytes: cfg.MaxBytes, maxSections: cfg.MaxSections}
	if lim.maxBytes <= 0 {
		lim.maxBytes = DefaultMaxBytes
	}
	if lim.maxSections <= 0 {
		lim.maxSections = DefaultMaxSections
	}
	return &Negotiator{cfg: cfg, lim: lim, usedMids: map[string]bool{}, sessionID: rand.Uint64() >> 2}, nil
}

// check refuses what would not make a valid description.
func (c *Config) check() error {
	if n := len(c.Ufrag); n < 4 || n > 256 || !iceChars(c.Ufrag) {
		return fmt.Errorf("ICE ufrag %q: want 4 to 256 letters, digits, + or /", c.Ufrag)
	}
	if n := len(c.Pwd); n < 22 || n > 256 || !iceChars(c.Pwd) {
		return fmt.Errorf("ICE pwd of %d characters: want 22 to 256 letters, digits, + or /", n)
	}
	if len(c.Fingerprints) == 0 {
		return fmt.Errorf("no DTLS fingerprint")
	}
	for _, f := range c.Fingerprints {
		if !visible(f.Algorithm, 32) || !visible(f.Value, 256) {
			return fmt.Errorf("fingerprint %q %q", f.Algorithm, f.Value)
		}
	}
	for _, cand := range c.Candidates {
		if !strings.HasPrefix(strings.TrimPrefix(cand, "a="), "candidate:") || strings.ContainsAny(cand, "\r\n") {
			return fmt.Errorf("candidate %q", cand)
		}
	}
	return nil
}

// iceChars reports whether s has only RFC 8839 ice-chars.
func iceChars(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '/')
	})
}

// visible reports whether s is 1 to max visible ASCII characters: no
// space or line break to end an SDP field early.
func visible(s string, max int) bool {
	return s != "" && len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' })
}

// State is the signaling state.
func (n *Negotiator) State() SignalingState { return n.state }

// Role is the node's negotiated DTLS role, Active (client) or Passive
// (server), or empty before the first negotiation completes.
func (n *Negotiator) Role() Setup { return n.role }

// Sections are the sections as last negotiated, in m-line order.
func (n *Negotiator) Sections() []Section { return views(n.cur) }

// Remote is the member's transport as last negotiated; false before.
func (n *Negotiator) Remote() (Transport, bool) {
	if n.remote == nil {
		return Transport{}, false
	}
	return *n.remote, true
}

// SetCredentials changes the node's ICE credentials, for the answer to an
// offer that restarts ICE (RFC 8839 wants new ones on both sides) or for
// the node's own restart with its next offer.
func (n *Negotiator) SetCredentials(ufrag, pwd string) error {
	c := n.cfg
	c.Ufrag, c.Pwd = ufrag, pwd
	if err := c.check(); err != nil {
		return fmt.Errorf("sdpneg: %w", err)
	}
	n.cfg = c
	return nil
}

// AddTrack asks for t to be sent. It goes on a section with the node's
// next offer (NeedsOffer), or with the answer being made if AddTrackOn
// places it first.
func (n *Negotiator) AddTrack(t Track) error {
	if t.Kind != Audio && t.Kind != Video {
		return fmt.Errorf("sdpneg: track %q of kind %q", t.ID, t.Kind)
	}
	if !visible(t.ID, 255) || !visible(t.StreamID, 255) || t.CNAME != "" && !visible(t.CNAME, 255) || t.SSRC == 0 {
		return fmt.Errorf("sdpneg: track %q of stream %q (cname %q) needs an id, a stream id, an SSRC, and no space in either", t.ID, t.StreamID, t.CNAME)
	}
	if n.wantedIndex(t.ID) >= 0 {
		return fmt.Errorf("sdpneg: track %q added twice", t.ID)
	}
	n.wanted = append(n.wanted, &t)
	return nil
}

// AddTrackOn adds t and places it on the section mid of the member's
// offer being answered, which must be one the member receives on, with
// t's codec and no track of the node's yet.
func (n *Negotiator) AddTrackOn(mid string, t Track) error {
	if n.state != HaveRemoteOffer {
		return fmt.Errorf("sdpneg: track %q on section %q in state %s: %w", t.ID, mid, n.state, ErrState)
	}
	i := slices.IndexFunc(n.next, func(s *section) bool { return s.mid == mid })
	if i < 0 {
		return fmt.Errorf("sdpneg: no section %q", mid)
	}
	s := n.next[i]
	if !s.fits(&t) || s.memberDir&dirRecv == 0 {
		return fmt.Errorf("sdpneg: section %q cannot carry %s track %q", mid, t.Kind, t.ID)
	}
	if err := n.AddTrack(t); err != nil {
		return err
	}
	s.track, s.nodeSends = n.wanted[len(n.wanted)-1], true
	return nil
}

// RemoveTrack stops sending the track id: its section goes receive-only
// or inactive with the next offer, or with the answer being made.
func (n *Negotiator) RemoveTrack(id string) error {
	i := n.wantedIndex(id)
	if i < 0 {
		return fmt.Errorf("sdpneg: no track %q", id)
	}
	n.wanted = slices.Delete(n.wanted, i, i+1)
	if n.state == HaveRemoteOffer {
		n.settleTracks(n.next)
	}
	return nil
}

func (n *Negotiator) wantedIndex(id string) int {
	return slices.IndexFunc(n.wanted, func(t *Track) bool { return t.ID == id })
}

// settleTracks takes tracks no longer wanted off secs.
func (n *Negotiator) settleTracks(secs []*section) {
	for _, s := range secs {
		if s.track != nil && n.wantedIndex(s.track.ID) < 0 {
			s.track, s.nodeSends = nil, false
		}
	}
}

// NeedsOffer reports whether the node has changes that only an offer of
// its own negotiates: a track to add, or one removed from a section.
func (n *Negotiator) NeedsOffer() bool {
	placed := map[string]bool{}
	for _, s := range n.cur {
		if s.track == nil {
			continue
		}
		if n.wantedIndex(s.track.ID) < 0 {
			return true
		}
		placed[s.track.ID] = true
	}
	return slices.ContainsFunc(n.wanted, func(t *Track) bool { return !placed[t.ID] })
}

// Rollback takes back the pending offer, the node's own (glare, when the
// member's offer is to be answered instead) or the member's (refused):
// the negotiation returns to its last stable state. Tracks added or
// removed meanwhile stay so, for the next offer.
func (n *Negotiator) Rollback() error {
	if n.state == Stable {
		return fmt.Errorf("sdpneg: rollback with no pending offer: %w", ErrState)
	}
	n.next, n.pendingRemote, n.pendingRole = nil, nil, ""
	n.state = Stable
	return nil
}
