package signaling

import (
	"encoding/json"
	"fmt"
	"time"
)

// Limits on what a client may send.
const (
	// MaxMessageBytes bounds one inbound WebSocket message other than an
	// offer or answer, and is the unit of the rate budget: a message costs
	// one token per MaxMessageBytes it starts (budget.go).
	MaxMessageBytes = 64 << 10
	// MaxSDPMessageBytes bounds an offer or answer message: MaxSDPBytes
	// with JSON's escaping of every line's CRLF (lines average some 40
	// bytes) and the envelope.
	MaxSDPMessageBytes = MaxSDPBytes + MaxSDPBytes/8 + 1<<10
	// MaxChatBytes bounds one chat message's text.
	MaxChatBytes = 4 << 10
	// MaxSDPBytes bounds an offer or answer, as JSON encodes it (sdpFits):
	// one sdpPublisherBytes for each of sdpMaxPublishers. Every publication a member receives is a
	// media section in every description of its connection to the media
	// node, and Chromium's own later offers (an ICE restart, a screen
	// shared) repeat its full codec list in each: some 4.5 kB a video
	// section, 0.8 kB an audio one (docs/benchmarks/sfu.md, "Session
	// description size").
	MaxSDPBytes = sdpMaxPublishers * sdpPublisherBytes
	// sdpMaxPublishers is the publishers, each with a camera and a
	// microphone, whose descriptions still cross the link to a remote
	// media node (sfulink.MaxMessage, 512 KiB): the node takes up to 200
	// participants, but a large room's are mostly viewers.
	sdpMaxPublishers = 64
	// sdpPublisherBytes is one video and one audio section of Chromium's
	// offers, rounded up.
	sdpPublisherBytes = 6 << 10
	// MaxCandidateBytes bounds one ICE candidate line.
	MaxCandidateBytes = 1 << 10
	// MaxNameBytes bounds a display name.
	MaxNameBytes = 80
)

// envelope is the part of every client message the dispatcher reads first.
type envelope struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	size int    // the message's length in bytes
}

// ProtoError is an error a client can act on: a stable code and a message.
type ProtoError struct {
	Code string `json:"code"`
	Msg  string `json:"message"`
}

func (e *ProtoError) Error() string { return e.Code + ": " + e.Msg }

// The stable error codes of the protocol.
var (
	ErrMalformed   = &ProtoError{"malformed", "the message is not valid JSON of the expected shape"}
	ErrTooLarge    = &ProtoError{"too-large", "the message exceeds the size limit"}
	ErrUnknownType = &ProtoError{"unknown-type", "unknown message type"}
	ErrLobby       = &ProtoError{"lobby", "waiting to be admitted"}
	ErrForbidden   = &ProtoError{"forbidden", "this requires a right you do not have"}
	ErrNoMember    = &ProtoError{"no-member", "no such member in this consult"}
	ErrBadSDP      = &ProtoError{"bad-sdp", "the session description is missing, too large or has no DTLS fingerprint"}
	ErrBadField    = &ProtoError{"bad-field", "a field is missing or invalid"}
	ErrRateLimited = &ProtoError{"rate-limited", "too many messages; slow down"}
	ErrInternal    = &ProtoError{"internal", "the server could not handle the message"}
)

// errorMsg is the reply to a bad message; Ref is the id of the message that
// caused it.
type errorMsg struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
	ProtoError
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// MemberInfo is how a member appears in the roster and the lobby list.
type MemberInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind"` // "clinician" or "guest"
	Host  bool   `json:"host,omitempty"`
	Audio bool   `json:"audio"`
	Video bool   `json:"video"`
	// Check is a guest's connectivity check result (direct, relay,
	// failed, unknown); empty when the join page sent none.
	Check string `json:"check,omitempty"`
	// NoMic: the guest joined without a microphone.
	NoMic bool `json:"noMic,omitempty"`
	// Recording is, in the hosts' lobby list while members are recorded,
	// the guest's answer: "asked", "agreed" or "declined".
	Recording string `json:"recording,omitempty"`
}

// ChatMessage is one chat line as members see it.
type ChatMessage struct {
	Seq  int64     `json:"seq"`
	From string    `json:"from"`
	Name string    `json:"name"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
	File *FileInfo `json:"file,omitempty"`
}

// FileInfo describes a document shared in the chat; members download it
// from the site by id.
type FileInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// Server-to-client messages.
type (
	welcomeMsg struct {
		Type   string `json:"type"` // "welcome"
		Member string `json:"member"`
		State  string `json:"state"` // "lobby" or "admitted"
		Host   bool   `json:"host"`
		Resume string `json:"resume"`
		// Recording is present when the host may ask to record.
		Recording *recordingOffer `json:"recording,omitempty"`
	}
	admittedMsg struct {
		Type       string        `json:"type"` // "admitted"
		ICEServers []ICEServer   `json:"iceServers"`
		Policy     string        `json:"iceTransportPolicy"`
		Roster     []MemberInfo  `json:"roster"`
		Chat       []ChatMessage `json:"chat"`
		Route      string        `json:"route"` // RouteP2P or RouteSFU
		// Node says the member's session on the media node is up: a tab
		// that reconnected keeps its connection to the node, and joins
		// again without it.
		Node bool `json:"node,omitempty"`
	}
	routeMsg struct {
		Type    string `json:"type"` // "route"
		Route   string `json:"route"`
		Restart bool   `json:"restart,omitempty"`
	}
	speakerMsg struct {
		Type   string `json:"type"` // "speaker"
		Member string `json:"member"`
	}
	rosterMsg struct {
		Type    string       `json:"type"` // "roster"
		Members []MemberInfo `json:"members"`
	}
	lobbyMsg struct {
		Type    string       `json:"type"` // "lobby"
		Waiting []MemberInfo `json:"waiting"`
	}
	chatOut struct {
		Type string `json:"type"` // "chat"
		ChatMessage
	}
	relayedMsg struct {
		Type      string          `json:"type"` // "offer", "answer", "candidate"
		From      string          `json:"from"`
		SDP       string          `json:"sdp,omitempty"`
		Candidate json.RawMessage `json:"candidate,omitempty"`
	}
	closingMsg struct {
		Type   string `json:"type"` // "denied", "removed", "ended"
		Reason string `json:"reason,omitempty"`
	}
	pongMsg struct {
		Type string `json:"type"`
		Ref  string `json:"ref,omitempty"`
	}
)

// Client-to-server message bodies.
type (
	sdpIn struct {
		To  string `json:"to"`
		SDP string `json:"sdp"`
	}
	candidateIn struct {
		To        string          `json:"to"`
		Candidate json.RawMessage `json:"candidate"`
	}
	chatIn struct {
		Text string `json:"text"`
	}
	memberIn struct {
		Member string `json:"member"`
	}
	viewIn struct {
		Member string `json:"member"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	mediaStateIn struct {
		Audio bool `json:"audio"`
		Video bool `json:"video"`
	}
)

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every type above marshals; a failure is a programming error.
		panic(fmt.Sprintf("signaling: encode %T: %v", v, err))
	}
	return b
}
