// Package recording records consults that every member agreed to record:
// it takes the media node's recorded tracks, writes them as WebM without
// transcoding, encrypts and stores them in the object store while the
// recording runs, and serves them back for playback and download.
package recording

import (
	"context"
	"time"

	"github.com/openconsult/openconsult/media"
)

// StartRequest is what the live consult hands over to start a recording
// once every admitted member has consented.
type StartRequest struct {
	ConsultID   string
	RoomID      string         // the consult's room on the media node
	Node        media.Recorder // the node the consult is on
	RequestedBy string         // account id of the host who asked
	Consents    []Consent      // one per member present when it starts
	// Request is the live consult's id of the consent request, which its
	// recording.requested and .consented entries carry: the started entry
	// names it too.
	Request string
}

// Consent is one member's agreement to be recorded.
type Consent struct {
	MemberID  string
	AccountID string // "" for a guest
	Name      string // display name, sealed before it is stored
	At        time.Time
}

// Active is a recording that runs.
type Active interface {
	ID() string
	// Stop ends the recording and finishes its files; reason is audited
	// ("requested", "withdrawn", "member-joined", "ended", ...).
	Stop(ctx context.Context, reason string) error
	// Done is closed when the recording ended, by Stop or because the
	// media node failed (the files are then kept, marked partial).
	Done() <-chan struct{}
}
