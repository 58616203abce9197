package wire

import (
	"errors"
	"sync"

	"github.com/pion/rtp"
)

// Header extension URIs that name a received stream (RFC 8843, RFC 8852).
const (
	MIDURI         = "urn:ietf:params:rtp-hdrext:sdes:mid"
	RIDURI         = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
	RepairedRIDURI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
)

// Route is what a received SSRC carries: the media section (mid), the
// simulcast layer (rid, empty without simulcast), and whether it is the
// layer's RTX stream (RFC 4588).
type Route struct {
	Mid string
	RID string
	RTX bool
}

// Inbound learns which section and layer each received SSRC belongs to,
// as RFC 8843 section 9.2 has it: from the remote description's a=ssrc
// lines where it gives them, else from the first packet's MID and RID
// (or repaired RID) header extensions. A learned SSRC stays learned
// across a section that stops sending and starts again: browsers resume
// on the same SSRCs and, once the node has sent reports on them, without
// the extensions. It is safe for concurrent use.
type Inbound struct {
	mu       sync.Mutex
	ids      ExtensionIDs
	declared map[uint32]Route // from the remote description
	learned  map[uint32]Route // from packets
	sections map[string]bool  // mids the remote side sends on now
}

// ExtensionIDs are the negotiated ids of the extensions Inbound reads; 0
// for one not negotiated.
type ExtensionIDs struct {
	MID, RID, RepairedRID uint8
}

// maxLearned bounds the SSRCs learned from packets per connection: a
// browser uses a handful per section it sends on.
const maxLearned = 256

// ErrUnknownSSRC is returned for a packet of an SSRC that neither the
// remote description nor the packet's extensions place in a section the
// remote side sends on.
var ErrUnknownSSRC = errors.New("wire: a packet of an SSRC no section sends")

// NewInbound starts with no sections.
func NewInbound() *Inbound {
	return &Inbound{declared: map[uint32]Route{}, learned: map[uint32]Route{}, sections: map[string]bool{}}
}

// Describe applies a remote description: the extension ids, the
// sections the remote side sends on, and the SSRCs it declares. SSRCs
// learned from packets stay, unless another section now declares them.
func (in *Inbound) Describe(ids ExtensionIDs, sending []string, declared map[uint32]Route) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ids = ids
	clear(in.sections)
	for _, mid := range sending {
		in.sections[mid] = true
	}
	in.declared = make(map[uint32]Route, len(declared))
	for ssrc, r := range declared {
		in.declared[ssrc] = r
		delete(in.learned, ssrc)
	}
}

// Route returns where a packet with header h belongs, or ErrUnknownSSRC
// if that is no section the remote side sends on now. It allocates only
// for an SSRC it learns.
func (in *Inbound) Route(h *rtp.Header) (Route, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if r, ok := in.declared[h.SSRC]; ok {
		return in.sending(r)
	}
	if r, ok := in.learned[h.SSRC]; ok {
		if mid := in.extBytes(h, in.ids.MID); mid == nil || string(mid) == r.Mid {
			return in.sending(r)
		}
		// The SSRC moved to another section (RFC 8843 section 9.2): the
		// extension wins.
	}
	r := Route{Mid: in.ext(h, in.ids.MID)}
	if r.Mid == "" {
		return Route{}, ErrUnknownSSRC
	}
	if rid := in.ext(h, in.ids.RepairedRID); rid != "" {
		r.RID, r.RTX = rid, true
	} else {
		r.RID = in.ext(h, in.ids.RID)
	}
	if !in.sections[r.Mid] {
		return Route{}, ErrUnknownSSRC
	}
	if _, ok := in.learned[h.SSRC]; !ok && len(in.learned) >= maxLearned {
		return Route{}, errors.New("wire: too many SSRCs learned on one connection")
	}
	in.learned[h.SSRC] = r
	return r, nil
}

// MediaSSRC is the SSRC of the media stream that an RTX stream of route
// r repairs: declared with it (an FID group) or learned for the same
// section and layer. ok is false while none is known.
func (in *Inbound) MediaSSRC(r Route, rtxSSRC uint32, fid map[uint32]uint32) (uint32, bool) {
	if ssrc, ok := fid[rtxSSRC]; ok {
		return ssrc, true
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	want := Route{Mid: r.Mid, RID: r.RID}
	for _, m := range []map[uint32]Route{in.learned, in.declared} {
		for ssrc, got := range m {
			if got == want {
				return ssrc, true
			}
		}
	}
	return 0, false
}

func (in *Inbound) sending(r Route) (Route, error) {
	if !in.sections[r.Mid] {
		return Route{}, ErrUnknownSSRC
	}
	return r, nil
}

// ext is the value of extension id in h, as a string of printable
// characters (RFC 8852 limits RIDs to alphanumerics, MIDs to tokens).
func (in *Inbound) ext(h *rtp.Header, id uint8) string {
	return string(in.extBytes(h, id))
}

// extBytes is ext without a copy; nil for none.
func (in *Inbound) extBytes(h *rtp.Header, id uint8) []byte {
	if id == 0 || !h.Extension {
		return nil
	}
	v := h.GetExtension(id)
	if len(v) == 0 {
		return nil
	}
	for _, c := range v {
		if c <= ' ' || c > '~' {
			return nil
		}
	}
	return v
}
