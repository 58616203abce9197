// Package sdpneg is the media node's side of the SDP offer/answer exchange
// (RFC 8829, JSEP) with a member's browser, for a transport of the node's
// own: unified plan, every section in one BUNDLE group over one ICE-lite
// transport with rtcp-mux, DTLS-SRTP keyed by the fingerprint it carries.
//
// A Negotiator holds one member's negotiation. The member offers first;
// the node answers (ApplyOffer, then CreateAnswer), and renegotiates when
// it has tracks to add or remove (CreateOffer, then ApplyAnswer). When the
// node's offer crosses the member's, the node takes its own back
// (Rollback) or refuses the member's. After each remote description the
// caller learns every section as negotiated (Section) and what changed.
//
// A Negotiator is not safe for concurrent use; the caller serialises its
// negotiation.
package sdpneg

import "errors"

// Kind is a section's media type.
type Kind string

// The media types the node negotiates; other sections are rejected.
const (
	Audio Kind = "audio"
	Video Kind = "video"
)

// Setup is a DTLS role as in a=setup (RFC 8842).
type Setup string

// The a=setup values. The node, once negotiated, is Active (DTLS client)
// or Passive (DTLS server).
const (
	Active  Setup = "active"
	Passive Setup = "passive"
	ActPass Setup = "actpass"
)

// SignalingState is where the negotiation stands (JSEP's states without
// provisional answers).
type SignalingState int

// The signaling states.
const (
	Stable SignalingState = iota
	HaveRemoteOffer
	HaveLocalOffer
)

func (s SignalingState) String() string {
	switch s {
	case Stable:
		return "stable"
	case HaveRemoteOffer:
		return "have-remote-offer"
	case HaveLocalOffer:
		return "have-local-offer"
	}
	return "unknown"
}

// Fingerprint is a certificate fingerprint as in a=fingerprint.
type Fingerprint struct {
	Algorithm string // "sha-256"
	Value     string // upper-case hex pairs separated by colons
}

// Codec is a negotiated codec of a section.
type Codec struct {
	PayloadType uint8
	Name        string // as in a=rtpmap: "opus", "VP8", "H264"
	ClockRate   uint32
	Channels    uint16 // 0 where the rtpmap names none
	Fmtp        string
	Feedback    []string // a=rtcp-fb values without the payload type: "nack pli"
	// RTX is the payload type of the codec's retransmission format
	// (RFC 4588, its apt naming this codec), 0 without one.
	RTX uint8
}

// SSRC is a stream the member sends, with its retransmission stream (the
// second SSRC of its FID group), 0 without one.
type SSRC struct {
	SSRC uint32
	RTX  uint32
}

// RID is a simulcast layer the member sends (a=rid ... send), paused
// when a=simulcast lists it with "~".
type RID struct {
	ID     string
	Paused bool
}

// Sender is what the member sends on a section.
type Sender struct {
	StreamID string // a=msid, "-" or empty when it names none
	TrackID  string
	SSRCs    []SSRC // in a=ssrc order, RTX streams attached to theirs
	RIDs     []RID  // simulcast layers, in a=simulcast order
}

// Track is a track the node sends: on a section of its own, or on one
// where the member receives.
type Track struct {
	ID       string // the node's name for it, unique in the negotiation; the msid track id
	StreamID string // the msid stream id
	Kind     Kind
	SSRC     uint32
	RTXSSRC  uint32 // announced in an FID group where RTX is negotiated; 0 for none
	CNAME    string
	// Codec, when its Name is set, is the codec the track is in: it goes
	// only on a section that negotiated it (for H.264, the profile in
	// packetization mode 1, given by Fmtp's profile-level-id).
	Codec Codec
}

// Section is one media section as negotiated.
type Section struct {
	Mid     string
	Kind    Kind // empty for a rejected section of a type the node does not negotiate
	Stopped bool // port 0: rejected or stopped; its m-line may be recycled
	Codecs  []Codec
	// Extensions are the negotiated header extensions by URI.
	Extensions map[string]int
	// MemberSends is set when the member sends on the section, with what.
	MemberSends bool
	Member      Sender
	// MemberReceives is set when the member takes media on the section:
	// the node may put a track of its own there.
	MemberReceives bool
	// NodeSends is set when the node sends Track on the section.
	NodeSends bool
	Track     *Track
}

// Transport is the member's side of the transport.
type Transport struct {
	Ufrag, Pwd   string
	Fingerprints []Fingerprint
	Setup        Setup    // as the member wrote it
	Candidates   []string // a=candidate values, "candidate:..." without "a="
	// EndOfCandidates is set when the description carries
	// a=end-of-candidates.
	EndOfCandidates bool
}

// ChangeKind is what changed on a section since the last negotiation.
type ChangeKind int

// The changes reported after a remote description.
const (
	// SectionAdded: a section the last negotiation did not have (a new
	// m-line, or a stopped one recycled with a new mid).
	SectionAdded ChangeKind = iota + 1
	// SectionStopped: the section is stopped or rejected (port 0), or its
	// m-line was recycled for another.
	SectionStopped
	// MemberStarted: the member sends on the section, where it did not.
	MemberStarted
	// MemberStopped: the member no longer sends on the section.
	MemberStopped
	// MemberChanged: the member sends something else than before (other
	// msid, SSRCs or simulcast layers).
	MemberChanged
	// TrackDropped: the node's track lost its section (stopped or
	// rejected); it stays wanted and goes on another with the next offer.
	TrackDropped
)

func (k ChangeKind) String() string {
	switch k {
	case SectionAdded:
		return "section-added"
	case SectionStopped:
		return "section-stopped"
	case MemberStarted:
		return "member-started"
	case MemberStopped:
		return "member-stopped"
	case MemberChanged:
		return "member-changed"
	case TrackDropped:
		return "track-dropped"
	}
	return "unknown"
}

// Change is one change of a section.
type Change struct {
	Mid     string
	Kind    ChangeKind
	TrackID string // the node's track, for TrackDropped
}

// Update is what a remote description brought: the sections as they
// stand with it (for an offer: as the answer will have them, except for
// what the node sends), the member's transport, and the changes since the
// last negotiation.
type Update struct {
	Sections  []Section
	Transport Transport
	// ICERestart is set when the member's ufrag or pwd changed; the
	// node's answer then takes new credentials of its own
	// (SetCredentials).
	ICERestart bool
	Changes    []Change
}

// Errors a description can be refused with, wrapped with the detail.
var (
	// ErrMalformed: the description does not parse or breaks a rule of
	// SDP, JSEP or BUNDLE.
	ErrMalformed = errors.New("malformed session description")
	// ErrTooLarge: the description exceeds the size or section limits.
	ErrTooLarge = errors.New("session description too large")
	// ErrUnsupported: valid, but not what the node negotiates (no BUNDLE,
	// no rtcp-mux, a transport other than DTLS-SRTP).
	ErrUnsupported = errors.New("unsupported session description")
	// ErrState: the call does not fit the signaling state (an offer while
	// the node's own is pending: glare).
	ErrState = errors.New("wrong signaling state")
)
