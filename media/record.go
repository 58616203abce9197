package media

import (
	"context"
	"errors"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Recorder is implemented by every Node (the in-process SFU, the remote
// node over the internal link, and the pool): it adds one more subscriber
// to a room, which takes every member's audio and best video layer as they
// arrive, without transcoding, and hands them to a RecordSink.
type Recorder interface {
	// Record starts recording roomID. The room's current tracks, and every
	// track published later, are announced through sink.Track. A room
	// that does not exist on the node is an error wrapping ErrNoRoom.
	Record(ctx context.Context, roomID string, sink RecordSink) (Recording, error)
}

// ErrNoRoom is returned, wrapped, by Record for a room the node does not
// hold (nobody joined it, or everyone left).
var ErrNoRoom = errors.New("no such room on the media node")

// ErrRoomClosed ends a recording, through RecordSink.Ended, when the last
// member left the room. A node that shuts down ends it with an error
// wrapping ErrUnavailable, and so does a lost link to a remote node.
var ErrRoomClosed = errors.New("room closed")

// RecordedTrack describes one published track that a recording takes.
type RecordedTrack struct {
	MemberID string
	// TrackID names the track within the recording, unique in the room
	// while the track lasts: "{member id}/{publisher's track id}" (browsers
	// may give two members' tracks the same id). A member that joins
	// again publishes tracks under the same ids once the old ones ended.
	TrackID string
	Kind    webrtc.RTPCodecType
	Codec   webrtc.RTPCodecParameters
}

// RecordSink receives a room's media for recording. Its methods run on the
// node's goroutines (or the link's): they must not block. For each track
// the node calls Track, then its WriteRTPs, then its End, one call at a
// time; calls for different tracks may run concurrently. Ended comes last,
// after the End of every track whose TrackSink was not nil.
// Recording.Stop and Keyframe may be called from within these methods.
type RecordSink interface {
	// Track announces a track the node now records; its packets follow
	// through the returned TrackSink (nil ignores the track).
	Track(t RecordedTrack) TrackSink
	// Ended reports that the node side of the recording ended: nil after
	// Recording.Stop, an error when the node failed or was lost.
	Ended(err error)
}

// TrackSink receives one recorded track.
type TrackSink interface {
	// WriteRTP passes one packet as a subscriber would receive it: one
	// simulcast layer, with sequence numbers and timestamps continuous
	// across layer switches, the publisher's payload type, no header
	// extensions. p and its payload are only valid during the call. A
	// sink that cannot keep up loses packets (the node drops them rather
	// than stall the room): sequence numbers show the gap, and a Keyframe
	// request starts the video again.
	WriteRTP(p *rtp.Packet)
	// End reports that the track ended (unpublished, or its member left).
	End()
}

// Recording is the node's side of one recording of a room.
type Recording interface {
	// Keyframe asks the publisher of trackID for a keyframe: when the
	// recording starts and after loss. The node already asks once for
	// every video track when it starts recording it; requests are
	// throttled per publisher (about two a second), so asking often is
	// harmless. An unknown or ended track is ignored.
	Keyframe(trackID string)
	// Stop ends the recording: every track Ends, then the sink's
	// Ended(nil). It returns at once; the Ends and Ended follow on the
	// node's goroutines (wait for Ended). Once the node side ended,
	// Stop does nothing.
	Stop()
}
