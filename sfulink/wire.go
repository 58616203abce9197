package sfulink

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// Defaults of the link; Server and Client share them so that both ends
// agree on sizes and liveness without configuration.
const (
	// MaxMessage bounds one link message: a description of a large room
	// with simulcast stays far below it.
	MaxMessage = 512 << 10
	// DefaultHeartbeat is how often each end pings; a peer silent for three
	// heartbeats is dead.
	DefaultHeartbeat = 2 * time.Second
	// callTimeout bounds a Participant call, which has no context of its
	// own; an offer waits for the node's ICE gathering.
	callTimeout = 30 * time.Second
	// sendQueue is how many messages may wait for the writer. The node's
	// events must not block, so a link that cannot keep up is closed
	// rather than allowed to stall the media node.
	sendQueue = 1024
)

// Message types.
const (
	typeJoin      = "join"
	typeOffer     = "offer"
	typeAnswer    = "answer"
	typeCandidate = "candidate"
	typeView      = "view"
	typeClose     = "close"
	typeResult    = "result"
	typeSpeaker   = "speaker"
	typeClosed    = "closed"
	typeReplaced  = "replaced"
	typeLoad      = "load"
	typeError     = "error"

	// Recording (see record.go).
	typeRecord     = "record"
	typeKeyframe   = "keyframe"
	typeStopRecord = "stoprecord"
	typeTrack      = "track"
	typeTrackEnd   = "trackend"
	typeRecordEnd  = "recordend"
)

// Error codes on the wire.
const (
	codeFull           = "full"
	codeUnavailable    = "unavailable"
	codeShutdown       = "shutdown"
	codeBadRequest     = "bad_request"
	codeUnknownSession = "unknown_session"
	codeBusy           = "busy"
	codeFailed         = "failed"
	codeNoRoom         = "no_room"
	codeRoomClosed     = "room_closed"
)

// message is every link message; a type uses the fields its row in the
// package documentation names.
type message struct {
	Type      string                   `json:"type"`
	ID        uint64                   `json:"id,omitempty"`
	SID       string                   `json:"sid,omitempty"`
	Room      string                   `json:"room,omitempty"`
	Member    string                   `json:"member,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Publisher string                   `json:"publisher,omitempty"`
	Width     int                      `json:"width,omitempty"`
	Height    int                      `json:"height,omitempty"`
	Load      *media.Load              `json:"load,omitempty"`
	Code      string                   `json:"code,omitempty"`
	Error     string                   `json:"error,omitempty"`

	// Recording: the recording's id on the link, the version of its media
	// stream, a track's number within the recording, its description, and
	// the track id a keyframe request names.
	Rec     uint32     `json:"rec,omitempty"`
	V       int        `json:"v,omitempty"`
	Num     uint32     `json:"num,omitempty"`
	Track   *wireTrack `json:"track,omitempty"`
	TrackID string     `json:"trackId,omitempty"`
}

// Error is an error the remote end reported, with its stable code.
// errors.Is matches media.ErrFull for "full" and media.ErrUnavailable for
// "unavailable" and "shutdown", so callers need not know the link exists.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("media node: %s (%s)", e.Msg, e.Code) }

// Is maps wire codes to the media package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case codeFull:
		return target == media.ErrFull
	case codeUnavailable, codeShutdown:
		return target == media.ErrUnavailable
	case codeNoRoom:
		return target == media.ErrNoRoom
	case codeRoomClosed:
		return target == media.ErrRoomClosed
	}
	return false
}

// codeOf is the wire code of an error of the local node.
func codeOf(err error) string {
	var remote *Error
	switch {
	case errors.As(err, &remote):
		return remote.Code
	case errors.Is(err, media.ErrFull):
		return codeFull
	case errors.Is(err, media.ErrShutdown):
		return codeShutdown
	case errors.Is(err, media.ErrUnavailable):
		return codeUnavailable
	case errors.Is(err, media.ErrNoRoom):
		return codeNoRoom
	case errors.Is(err, media.ErrRoomClosed):
		return codeRoomClosed
	}
	return codeFailed
}

// remoteError turns a result or closed message into an error, nil when it
// carries none.
func remoteError(m message) error {
	if m.Code == "" {
		return nil
	}
	return &Error{Code: clip(m.Code), Msg: clip(m.Error)}
}

// maxErrorText is how much of a node's error text signal keeps: it goes
// into signal's logs and errors, and a message may be far longer.
const maxErrorText = 256

// clip cuts s, text from a node, to at most maxErrorText bytes of valid
// UTF-8, marking a cut with "…".
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxErrorText {
		return s
	}
	const mark = "…"
	cut := maxErrorText - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
