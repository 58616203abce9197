package sdpneg

import (
	"fmt"
	"slices"
)

// ApplyOffer takes the member's offer, first or later, and returns what
// it brings: the sections as the answer will have them (the node's
// tracks as they stand; AddTrackOn may place more before CreateAnswer).
// While the node's own offer is pending the member's is refused with
// ErrState (glare): the caller rolls its own back first or refuses it.
func (n *Negotiator) ApplyOffer(raw string) (*Update, error) {
	if n.state != Stable {
		return nil, fmt.Errorf("sdpneg: remote offer in state %s: %w", n.state, ErrState)
	}
	d, err := parseRemote(raw, n.lim)
	if err != nil {
		return nil, fmt.Errorf("remote offer: %w", err)
	}
	role, err := n.answerRole(d.transport.Setup)
	if err != nil {
		return nil, fmt.Errorf("remote offer: %w", err)
	}
	next, dropped, err := n.mergeOffer(d.sections)
	if err != nil {
		return nil, fmt.Errorf("remote offer: %w", err)
	}
	n.next, n.pendingRole, n.pendingRemote = next, role, &d.transport
	n.state = HaveRemoteOffer
	return n.update(next, d.transport, dropped), nil
}

// answerRole is the node's DTLS role in its answer to an offer with
// setup: passive to an offer that leaves it to the node (or keeps the
// member active), active to a member that wants to be the server. A role
// once negotiated does not change.
func (n *Negotiator) answerRole(setup Setup) (Setup, error) {
	role := Passive
	switch setup {
	case Passive:
		role = Active
	case ActPass:
		if n.role != "" {
			role = n.role
		}
	}
	if n.role != "" && role != n.role {
		return "", fmt.Errorf("setup %s would change the node's DTLS role from %s: %w", setup, n.role, ErrUnsupported)
	}
	return role, nil
}

// mergeOffer makes the sections of an offer from the current ones: the
// same m-lines in order, a stopped one perhaps recycled with a new mid,
// new ones appended. It returns the node's tracks that lost their
// section.
func (n *Negotiator) mergeOffer(offered []remoteSection) ([]*section, []Change, error) {
	if len(offered) < len(n.cur) {
		return nil, nil, fmt.Errorf("%d media sections where the last negotiation had %d: %w", len(offered), len(n.cur), ErrMalformed)
	}
	var next []*section
	for i, rs := range offered {
		var s *section
		if i < len(n.cur) && n.cur[i].mid == rs.mid {
			s = n.cur[i].clone()
			if s.media != rs.media {
				return nil, nil, fmt.Errorf("section %q changed from %s to %s: %w", rs.mid, s.media, rs.media, ErrMalformed)
			}
		} else {
			if i < len(n.cur) && !n.cur[i].stopped {
				return nil, nil, fmt.Errorf("m-line %d: mid %q replaces %q, which is in use: %w", i, rs.mid, n.cur[i].mid, ErrMalformed)
			}
			if slices.ContainsFunc(n.cur, func(c *section) bool { return c.mid == rs.mid }) {
				return nil, nil, fmt.Errorf("m-line %d: mid %q of another m-line: %w", i, rs.mid, ErrMalformed)
			}
			s = &section{mid: rs.mid}
		}
		s.media, s.kind, s.proto, s.formats, s.stopped = rs.media, rs.kind, rs.proto, rs.formats, rs.stopped || rs.kind == ""
		s.codecs, s.exts = answerCodecs(rs.kind, rs.codecs), answerExtensions(rs.kind, rs.exts)
		if len(s.codecs) == 0 {
			s.stopped = true // no codec in common: rejected
		}
		s.memberDir, s.member, s.memberSends = rs.dir, rs.sender, rs.sends() && !s.stopped
		next = append(next, s)
	}
	n.settleTracks(next)
	return next, n.dropTracks(next, func(s *section) bool { return s.memberDir&dirRecv != 0 }), nil
}

// dropTracks takes the node's tracks off the stopped sections of secs and
// sets whether each placed track is sent (receives reports whether the
// member receives on the section).
func (n *Negotiator) dropTracks(secs []*section, receives func(*section) bool) []Change {
	var ch []Change
	for _, s := range secs {
		if s.track != nil && s.stopped {
			ch = append(ch, Change{Mid: s.mid, Kind: TrackDropped, TrackID: s.track.ID})
			s.track = nil
		}
		s.nodeSends = s.track != nil && receives(s)
	}
	return ch
}

// update reports a remote description's sections and changes.
func (n *Negotiator) update(secs []*section, t Transport, dropped []Change) *Update {
	u := &Update{Sections: views(secs), Transport: t, Changes: append(diff(n.cur, secs), dropped...)}
	if n.remote != nil {
		u.ICERestart = n.remote.Ufrag != t.Ufrag || n.remote.Pwd != t.Pwd
	}
	u.Transport.Candidates = slices.Clone(t.Candidates)
	u.Transport.Fingerprints = slices.Clone(t.Fingerprints)
	return u
}

// CreateAnswer answers the member's offer and completes the negotiation.
func (n *Negotiator) CreateAnswer() (string, error) {
	if n.state != HaveRemoteOffer {
		return "", fmt.Errorf("sdpneg: answer in state %s: %w", n.state, ErrState)
	}
	n.version++
	sdp, err := n.write(n.next, n.pendingRole, false)
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	n.commit()
	return sdp, nil
}

// commit makes the pending negotiation the current one.
func (n *Negotiator) commit() {
	for _, s := range n.next {
		n.usedMids[s.mid] = true
	}
	n.cur, n.remote, n.role = n.next, n.pendingRemote, n.pendingRole
	n.next, n.pendingRemote, n.pendingRole = nil, nil, ""
	n.state = Stable
}

// ApplyAnswer takes the member's answer to the node's offer and
// completes the negotiation.
func (n *Negotiator) ApplyAnswer(raw string) (*Update, error) {
	if n.state != HaveLocalOffer {
		return nil, fmt.Errorf("sdpneg: remote answer in state %s: %w", n.state, ErrState)
	}
	d, err := parseRemote(raw, n.lim)
	if err != nil {
		return nil, fmt.Errorf("remote answer: %w", err)
	}
	switch d.transport.Setup {
	case Active:
		n.pendingRole = Passive
	case Passive:
		n.pendingRole = Active
	default:
		return nil, fmt.Errorf("remote answer: setup %s: %w", d.transport.Setup, ErrMalformed)
	}
	if n.role != "" && n.pendingRole != n.role {
		return nil, fmt.Errorf("remote answer: the node's DTLS role would change from %s: %w", n.role, ErrUnsupported)
	}
	if err := n.mergeAnswer(d.sections); err != nil {
		return nil, fmt.Errorf("remote answer: %w", err)
	}
	dropped := n.dropTracks(n.next, func(s *section) bool { return s.memberDir&dirRecv != 0 })
	n.pendingRemote = &d.transport
	u := n.update(n.next, d.transport, dropped)
	n.commit()
	return u, nil
}

// mergeAnswer applies the answer's sections to the offer's.
func (n *Negotiator) mergeAnswer(answered []remoteSection) error {
	if len(answered) != len(n.next) {
		return fmt.Errorf("%d media sections answer an offer of %d: %w", len(answered), len(n.next), ErrMalformed)
	}
	for i, rs := range answered {
		s := n.next[i]
		if rs.mid != s.mid || rs.media != s.media {
			return fmt.Errorf("m-line %d: %s %q answers %s %q: %w", i, rs.media, rs.mid, s.media, s.mid, ErrMalformed)
		}
		if s.stopped || rs.stopped {
			s.stopped, s.memberDir, s.memberSends = true, dirInactive, false
			continue
		}
		codecs, err := answeredCodecs(s.codecs, rs.codecs)
		if err != nil {
			return fmt.Errorf("section %q: %w", s.mid, err)
		}
		s.codecs, s.stopped = codecs, len(codecs) == 0
		s.exts = answeredExtensions(s.exts, rs.exts)
		s.memberDir, s.member, s.memberSends = rs.dir, rs.sender, rs.sends() && !s.stopped
	}
	return nil
}

// answeredCodecs are the offered codecs an answer accepts, in its order,
// with the feedback and RTX it kept.
func answeredCodecs(offered, answered []Codec) ([]Codec, error) {
	var out []Codec
	for _, a := range answered {
		i := slices.IndexFunc(offered, func(o Codec) bool { return o.PayloadType == a.PayloadType })
		if i < 0 || !sameCodec(offered[i], a) {
			return nil, fmt.Errorf("answer has %s as payload type %d, not offered: %w", a.Name, a.PayloadType, ErrMalformed)
		}
		c := offered[i]
		c.Feedback = commonFeedback(c.Feedback, a.Feedback)
		if a.RTX != c.RTX {
			c.RTX = 0
		}
		out = append(out, c)
	}
	return out, nil
}

// answeredExtensions keeps the offered extensions the answer accepts
// under the same ids.
func answeredExtensions(offered, answered map[string]int) map[string]int {
	out := map[string]int{}
	for uri, id := range offered {
		if answered[uri] == id {
			out[uri] = id
		}
	}
	return out
}
