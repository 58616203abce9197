package media

import (
	"context"

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
	// that does not exist on the node is an error.
	Record(ctx context.Context, roomID string, sink RecordSink) (Recording, error)
}

// RecordedTrack describes one published track that a recording takes.
type RecordedTrack struct {
	MemberID string
	TrackID  string
	Kind     webrtc.RTPCodecType
	Codec    webrtc.RTPCodecParameters
}

// RecordSink receives a room's media for recording. Its methods run on the
// node's goroutines (or the link's): they must not block.
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
	// across layer switches. p and its payload are only valid during the
	// call.
	WriteRTP(p *rtp.Packet)
	// End reports that the track ended (unpublished, or its member left).
	End()
}

// Recording is the node's side of one recording of a room.
type Recording interface {
	// Keyframe asks the publisher of trackID for a keyframe: when the
	// recording starts and after loss.
	Keyframe(trackID string)
	// Stop ends the recording: every track Ends, then the sink's Ended(nil).
	Stop()
}
