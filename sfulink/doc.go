// Package sfulink is the authenticated internal link between signal
// processes and remote media nodes (the sfu binary). It owns three things:
//
//   - Server, the http.Handler an sfu process runs on its link listener,
//     which exposes a local media.Node (the *media.SFU) to signal processes;
//   - Client, a media.Node backed by one remote node over the link, which
//     reconnects by itself and reports a lost link to every session as
//     Events.Closed(err wrapping media.ErrUnavailable);
//   - Pool, a media.Node over several Clients that keeps every room on one
//     node, places new rooms on the least-loaded reachable node, and moves
//     a room to another node once its node is lost.
//
// # Authentication
//
// Both ends authenticate with certificates of an internal CA (mutual TLS,
// TLS 1.3 only): the node's listener requires and verifies a client
// certificate (ServerTLS), and signal verifies the node's certificate
// (ClientTLS). There is no other credential: whoever holds a client
// certificate of the link CA may open sessions on the node, so that CA
// must sign nothing else.
//
// # Wire protocol
//
// One WebSocket per signal→node link carries JSON text messages of at most
// MaxMessage bytes, each an object with a "type":
//
//	from signal: join {id, sid, room, member}
//	             offer {id, sid, sdp}, answer {id, sid, sdp}
//	             candidate {id, sid, candidate}
//	             view {id, sid, publisher, width, height}
//	             close {sid}
//	             record {id, rec, room, v}   start recording a room
//	             keyframe {rec, trackId}, stoprecord {rec}
//	from node:   result {id, load?, code?, error?}   one per request id
//	             answer {sid, sdp}, offer {sid, sdp}, speaker {sid, member}
//	             closed {sid, code, error}   the node ended the session
//	             replaced {sid}   the member joined again; ends silently
//	             load {load}   every second and when it changes
//	             error {id?, code, error}   a message the node cannot read
//	             track {rec, num, track}   a track the recording now takes
//	             trackend {rec, num}, recordend {rec, code?, error?}
//	             binary media messages (below)
//
// The client chooses session ids ("sid"), unique on its link, and request
// ids ("id"); every request gets exactly one result. Operations of one
// session are applied in the order they were sent, each session on its own
// goroutine so that a slow SDP exchange does not hold up other sessions.
// A join's result precedes any closed or replaced message of its session;
// a session whose join did not succeed ends without Closed (Join returns
// the error instead), and so does one that a misbehaving node ends before
// its join's result: Join fails rather than return an ended session (and
// Record likewise for a recording). The node's events reach media.Events in order, on a
// goroutine per session, never on the link's reader.
// Error codes are stable: "full" (errors.Is media.ErrFull on the client),
// "unavailable" and "shutdown" (media.ErrUnavailable), "no_room"
// (media.ErrNoRoom), "room_closed" (media.ErrRoomClosed), "bad_request",
// "unknown_session", "busy", "failed".
//
// # Recording
//
// Client and Pool implement media.Recorder: signal asks the node that
// holds a room to record it (record, with the version v of the recording
// stream, 1; a node that speaks another refuses it as bad_request), and
// the node runs its own recorder and streams what it records back. Each
// track is announced by a track message with its number within the
// recording, codec and member; its RTP packets follow in binary
// WebSocket messages (a version byte, then records of recording id, track
// number, length and one RTP packet each, batched up to 32 KiB; see
// frame.go); trackend and recordend close them. All of it shares the
// link's one ordered queue, so a track's packets come after its
// description and before its end. Recorded media may take only part of
// that queue: what the link cannot carry is dropped (the recorder sees
// the gap in sequence numbers and asks for a keyframe), so that it never
// crowds out the sessions' messages. On the signal side each recording is
// delivered to its sink on a goroutine of its own, behind a bounded
// queue. A lost link ends the recording with an error wrapping
// media.ErrUnavailable, as it ends the sessions; a stopped recording that
// the node does not end within the client's ReplyTimeout ends there with
// an error.
//
// # Liveness and bounds
//
// Both ends ping every Heartbeat and give up on a peer silent for three
// heartbeats, so a dead node or a dead signal process is noticed within
// seconds; a node ends every session of a link that is gone.
//
// A node may also be up and misbehave; the signal side bounds what that
// costs it. Join and Record wait for the node's reply ReplyTimeout
// (DefaultReplyTimeout) at most, whatever the caller's context allows,
// then undo the request. A session's events wait for its receiver behind
// a queue of maxSessionEvents: a node that sends more ends the session
// with an error and is told to close it; a recording likewise. Such
// floods, and messages over MaxMessage (which close the link), are logged
// and counted by reason (Metrics). A node's error text is cut to
// maxErrorText bytes of valid UTF-8 before signal logs or returns it.
package sfulink

import (
	"net/http"

	"github.com/openconsult/openconsult/media"
)

// The link's types are what the signal server and the sfu binary take them
// for.
var (
	_ media.Node        = (*Client)(nil)
	_ media.Node        = (*Pool)(nil)
	_ media.Recorder    = (*Client)(nil)
	_ media.Recorder    = (*Pool)(nil)
	_ media.Recording   = (*remoteRecording)(nil)
	_ media.RecordSink  = (*serverRecording)(nil)
	_ media.Participant = (*remoteParticipant)(nil)
	_ media.Participant = (*poolParticipant)(nil)
	_ media.Events      = sessionEvents{}
	_ media.Events      = poolEvents{}
	_ http.Handler      = (*Server)(nil)
)
