package sdpneg

import (
	"maps"
	"slices"
)

// section is the negotiation's state of one m-section.
type section struct {
	mid     string
	media   string // the m-line's media type
	kind    Kind   // empty for a type the node does not negotiate
	proto   string
	formats []string // the m-line's formats, kept for a stopped section
	stopped bool
	codecs  []Codec
	exts    map[string]int
	// The member's side: its direction as it wrote it, and what it sends.
	memberDir   direction
	memberSends bool
	member      Sender
	// The node's side: the track placed on the section, and whether it
	// is sent (the member receives).
	track     *Track
	nodeSends bool
}

func (s *section) clone() *section {
	c := *s
	c.codecs = slices.Clone(s.codecs)
	c.exts = maps.Clone(s.exts)
	return &c
}

func cloneSections(secs []*section) []*section {
	out := make([]*section, len(secs))
	for i, s := range secs {
		out[i] = s.clone()
	}
	return out
}

// view is the section as the package's callers see it.
func (s *section) view() Section {
	v := Section{Mid: s.mid, Kind: s.kind, Stopped: s.stopped, MemberSends: s.memberSends,
		MemberReceives: s.memberDir&dirRecv != 0, NodeSends: s.nodeSends, Extensions: maps.Clone(s.exts)}
	if v.Extensions == nil {
		v.Extensions = map[string]int{}
	}
	for _, c := range s.codecs {
		c.Feedback = slices.Clone(c.Feedback)
		v.Codecs = append(v.Codecs, c)
	}
	if s.memberSends {
		v.Member = Sender{StreamID: s.member.StreamID, TrackID: s.member.TrackID,
			SSRCs: slices.Clone(s.member.SSRCs), RIDs: slices.Clone(s.member.RIDs)}
	}
	if s.track != nil {
		t := *s.track
		v.Track = &t
	}
	return v
}

func views(secs []*section) []Section {
	out := make([]Section, len(secs))
	for i, s := range secs {
		out[i] = s.view()
	}
	return out
}

// free reports whether the node may put t on the section with its next
// offer: in use, of t's kind, with its codec, and neither side sending.
func (s *section) free(t *Track) bool {
	return s.fits(t) && s.memberDir&dirSend == 0
}

// fits reports whether the section, in use and without a track of the
// node's, can carry t.
func (s *section) fits(t *Track) bool {
	if s.stopped || s.kind != t.Kind || s.track != nil || len(s.codecs) == 0 {
		return false
	}
	return t.Codec.Name == "" || slices.ContainsFunc(s.codecs, func(c Codec) bool { return carries(t.Codec, c) })
}

// Carries reports whether a section's codec c carries a track in want,
// as AddTrackOn and the node's offers judge it.
func Carries(want, c Codec) bool { return carries(want, c) }

// carries reports whether a negotiated codec carries a track in want,
// which may leave the clock rate, channels or (for H.264) the profile
// unsaid.
func carries(want, c Codec) bool {
	if want.ClockRate == 0 {
		want.ClockRate = c.ClockRate
	}
	if want.Channels == 0 {
		want.Channels = c.Channels
	}
	if want.Fmtp == "" {
		want.Fmtp = c.Fmtp
	}
	return sameCodec(want, c)
}

// sameSender reports whether two senders are the same.
func sameSender(a, b Sender) bool {
	return a.StreamID == b.StreamID && a.TrackID == b.TrackID &&
		slices.Equal(a.SSRCs, b.SSRCs) && slices.Equal(a.RIDs, b.RIDs)
}

// diff lists what changed from the sections of one negotiation to the
// next.
func diff(old, cur []*section) []Change {
	byMid := map[string]*section{}
	for _, s := range old {
		byMid[s.mid] = s
	}
	var ch []Change
	add := func(mid string, k ChangeKind) { ch = append(ch, Change{Mid: mid, Kind: k}) }
	for _, s := range cur {
		o := byMid[s.mid]
		switch {
		case o == nil:
			if !s.stopped {
				add(s.mid, SectionAdded)
			}
			if s.memberSends {
				add(s.mid, MemberStarted)
			}
			continue
		case s.stopped && !o.stopped:
			add(s.mid, SectionStopped)
		}
		switch {
		case s.memberSends && !o.memberSends:
			add(s.mid, MemberStarted)
		case !s.memberSends && o.memberSends:
			add(s.mid, MemberStopped)
		case s.memberSends && !sameSender(s.member, o.member):
			add(s.mid, MemberChanged)
		}
	}
	return ch
}
