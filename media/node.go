package media

import (
	"context"
	"errors"

	"github.com/pion/webrtc/v4"
)

// Node is a media node as the signal server sees it: the in-process *SFU,
// or a remote node reached over the internal link. Every implementation
// passes the suite in media/nodetest.
//
// All participants of one room must be on the same node; a Node that
// spreads over several nodes (a pool) keeps each room on one of them.
type Node interface {
	// Join opens a session for memberID in roomID. The browser's offer then
	// goes to Participant.Offer, and the node's answer and later offers come
	// back through events. A member that joins again replaces its previous
	// session, which ends without a Closed event. A node without room
	// returns an error wrapping ErrFull, so the caller can pick another.
	Join(ctx context.Context, roomID, memberID string, events Events) (Participant, error)
	// Load reports the node's use, to choose the least-loaded node.
	Load() Load
}

// Load is a node's current use and limits.
type Load struct {
	Rooms           int `json:"rooms"`
	Participants    int `json:"participants"`
	Tracks          int `json:"tracks"`
	MaxParticipants int `json:"maxParticipants"` // 0 for no limit
	MaxTracks       int `json:"maxTracks"`       // 0 for no limit
	Recordings      int `json:"recordings,omitempty"`
}

// HasRoom reports whether the node can take n more participants.
func (l Load) HasRoom(n int) bool {
	return l.MaxParticipants == 0 || l.Participants+n <= l.MaxParticipants
}

// Participant is one member's session on a node, as its browser drives it.
// Methods may block for a network round trip and must not be called with
// locks held that an Events method takes.
type Participant interface {
	// Offer applies the browser's offer; the answer comes through
	// Events.Answer before any offer of the node.
	Offer(sdp string) error
	// Answer applies the browser's answer to the node's last offer.
	Answer(sdp string) error
	// Candidate applies a trickled ICE candidate of the browser.
	Candidate(c webrtc.ICECandidateInit) error
	// View tells the node at what size, in CSS pixels, the browser shows
	// publisherID's camera (0, 0 when it is hidden), so the node forwards
	// the simulcast layer that fits instead of the largest one.
	View(publisherID string, width, height int) error
	// Close ends the session; the member's tracks leave the room. It does
	// not call Events.Closed.
	Close()
}

// Events carries what the node says to one participant, in order: an
// answer is always delivered before the next offer, so the browser never
// meets an offer while its own is unanswered. The node's descriptions carry
// all its candidates (a server gathers its few addresses at once), so
// nothing trickles from this side. Methods must not block for long: they
// run on the node's goroutines.
type Events interface {
	Answer(sdp string)
	Offer(sdp string)
	// Speaker names the member heard loudest in the room now, from the
	// audio levels browsers send (RFC 6464); "" when nobody speaks.
	Speaker(memberID string)
	// Closed reports that the session ended on the node's side: the
	// browser's transport failed, or the node shut down or was lost. The
	// member may join again, on this node or another.
	Closed(err error)
}

// ErrFull is returned, wrapped, when a node has no room for another
// participant or track, so the caller can pick another node.
var ErrFull = errors.New("media node full")

// ErrUnavailable is returned, wrapped, when no node can be reached.
var ErrUnavailable = errors.New("media node unavailable")
