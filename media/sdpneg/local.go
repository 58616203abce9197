package sdpneg

import (
	"fmt"
	"slices"
	"strconv"
)

// CreateOffer makes the node's offer: every section in order, the tracks
// no longer wanted taken off theirs, each new track on a free section of
// its kind (one where neither side sends), else on a stopped m-line of
// its kind recycled with a new mid, else on a section appended. It needs
// a completed negotiation (the member offers first) and the stable state.
func (n *Negotiator) CreateOffer() (string, error) {
	if n.state != Stable || n.remote == nil {
		return "", fmt.Errorf("sdpneg: offer in state %s before the member's first offer completed: %w", n.state, ErrState)
	}
	next := cloneSections(n.cur)
	n.settleTracks(next)
	placed := map[string]bool{}
	for _, s := range next {
		if s.track != nil {
			placed[s.track.ID] = true
		}
	}
	for _, t := range n.wanted {
		if !placed[t.ID] {
			next = n.place(next, t)
		}
	}
	for _, s := range next {
		s.nodeSends = s.track != nil
	}
	n.version++
	sdp, err := n.write(next, ActPass, true)
	if err != nil {
		return "", fmt.Errorf("offer: %w", err)
	}
	n.next, n.pendingRemote = next, nil
	n.state = HaveLocalOffer
	return sdp, nil
}

// place puts t on a free section of secs, a recycled one or a new one.
func (n *Negotiator) place(secs []*section, t *Track) []*section {
	if i := slices.IndexFunc(secs, func(s *section) bool { return s.free(t) }); i >= 0 {
		secs[i].track = t
		return secs
	}
	s := &section{mid: n.newMid(secs), media: string(t.Kind), kind: t.Kind, proto: "UDP/TLS/RTP/SAVPF", track: t}
	s.codecs, s.exts = offerCodecs(secs, t.Kind), offerExtensions(secs, t.Kind)
	if i := slices.IndexFunc(secs, func(o *section) bool { return o.stopped && o.kind == t.Kind }); i >= 0 {
		secs[i] = s
		return secs
	}
	return append(secs, s)
}

// newMid is the lowest number not yet used as a mid.
func (n *Negotiator) newMid(secs []*section) string {
	for i := 0; ; i++ {
		mid := strconv.Itoa(i)
		if !n.usedMids[mid] && !slices.ContainsFunc(secs, func(s *section) bool { return s.mid == mid }) {
			return mid
		}
	}
}

// offerCodecs are the node's codecs of kind k for a new section, under
// the payload types the BUNDLE group already gives them, else the node's
// own where free, else free dynamic ones: one payload type means one
// codec across the group.
func offerCodecs(secs []*section, k Kind) []Codec {
	used := map[uint8]bool{}
	for _, s := range secs {
		for _, c := range s.codecs {
			used[c.PayloadType] = true
			if c.RTX != 0 {
				used[c.RTX] = true
			}
		}
	}
	var out []Codec
	for _, c := range nodeCodecs(k) {
		if known, ok := codecInBundle(secs, k, c); ok {
			c.PayloadType, c.RTX = known.PayloadType, known.RTX
			out = append(out, c)
			continue
		}
		c.PayloadType = freePT(used, c.PayloadType)
		if c.RTX != 0 {
			c.RTX = freePT(used, c.RTX)
		}
		out = append(out, c)
	}
	return out
}

// codecInBundle finds c negotiated on a section in use, else on a
// stopped one: out of the BUNDLE group, whose payload types are free
// again, and which the member knows c by. (A member whose only video
// section it stopped answered the node's next video section with its
// first payload types, not the offer's fresh ones.)
func codecInBundle(secs []*section, k Kind, c Codec) (Codec, bool) {
	for _, stopped := range []bool{false, true} {
		for _, s := range secs {
			if s.stopped != stopped || s.kind != k {
				continue
			}
			for _, o := range s.codecs {
				if sameCodec(c, o) && (c.RTX == 0) == (o.RTX == 0) {
					return o, true
				}
			}
		}
	}
	return Codec{}, false
}

// freePT takes pt if free, else the first free dynamic payload type; with
// none left, pt regardless (the section then repeats a type).
func freePT(used map[uint8]bool, pt uint8) uint8 {
	if !used[pt] {
		used[pt] = true
		return pt
	}
	for p := uint8(firstDynamicPT); p <= lastDynamicPT; p++ {
		if !used[p] {
			used[p] = true
			return p
		}
	}
	return pt
}

// offerExtensions are the node's extensions of kind k for a new section,
// under the ids the group gives their URIs, else free one-byte ids.
func offerExtensions(secs []*section, k Kind) map[string]int {
	ids := map[string]int{}
	taken := map[int]bool{}
	for _, s := range secs {
		for uri, id := range s.exts {
			ids[uri] = id
			taken[id] = true
		}
	}
	out := map[string]int{}
	for _, uri := range extensionsOf(k) {
		if id, ok := ids[uri]; ok {
			out[uri] = id
			continue
		}
		for id := 1; id <= maxOneByteExtID; id++ {
			if !taken[id] {
				taken[id], out[uri] = true, id
				break
			}
		}
	}
	return out
}
