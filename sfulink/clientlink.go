package sfulink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// clientLink is one established link of a Client; a reconnection makes a
// new one.
type clientLink struct {
	c       *Client
	ep      *endpoint
	nextID  atomic.Uint64
	nextSID atomic.Uint64
	nextRec atomic.Uint32

	over chan struct{} // closed by end, after the last message was handled

	sessions *registry[string, *remoteParticipant]
	recs     *registry[uint32, *remoteRecording]

	mu      sync.Mutex
	ended   error                  // why the link ended; nil while up
	pending map[uint64]pendingCall // requests waiting for their result
}

func newClientLink(c *Client, ep *endpoint) *clientLink {
	return &clientLink{c: c, ep: ep, over: make(chan struct{}), pending: map[uint64]pendingCall{},
		sessions: newRegistry[string, *remoteParticipant](&c.events),
		recs:     newRegistry[uint32, *remoteRecording](&c.events)}
}

// pendingCall is a request waiting for its result; ok, if set, runs on the
// read loop when the result is a success, before anything that follows
// it on the link is handled.
type pendingCall struct {
	ch chan message
	ok func()
}

// handle dispatches one message of the node from the read loop; user
// callbacks run on each session's own goroutine, never here.
func (l *clientLink) handle(data []byte) {
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		l.c.log.Warn("sfulink malformed message from node", "node", l.c.url, "err", err)
		return
	}
	if m.Load != nil {
		l.c.setLoad(*m.Load)
	}
	switch m.Type {
	case typeResult:
		l.mu.Lock()
		pc, ok := l.pending[m.ID]
		delete(l.pending, m.ID)
		l.mu.Unlock()
		if !ok {
			break
		}
		if pc.ok != nil && m.Code == "" {
			// Marked here, on the read loop, so that a link lost from now
			// on reports Closed (or Ended) to this session (or recording).
			pc.ok()
		}
		pc.ch <- m // buffered: one result per request
	case typeAnswer, typeOffer, typeSpeaker:
		if rp := l.sessions.get(m.SID); rp != nil {
			rp.push(m)
		}
	case typeClosed:
		if rp := l.sessions.take(m.SID); rp != nil {
			rp.finish(fmt.Errorf("sfulink: node %s closed the session: %w", l.c.url, remoteError(m)))
		}
	case typeReplaced:
		// The node has already closed the session: what is still queued
		// for it is stale.
		if rp := l.sessions.take(m.SID); rp != nil {
			rp.discard()
		}
	case typeTrack, typeTrackEnd, typeRecordEnd:
		l.handleRecording(m)
	case typeError:
		l.c.log.Warn("sfulink node refused a message", "node", l.c.url, "code", clip(m.Code), "err", clip(m.Error))
	}
}

// end fails what waits on the link and reports reason to every session
// and recording.
func (l *clientLink) end(reason error) {
	l.mu.Lock()
	l.ended, l.pending = reason, nil
	l.mu.Unlock()
	sessions, recs := l.sessions.end(reason), l.recs.end(reason)
	close(l.over)
	for _, rp := range sessions {
		rp.finish(reason)
	}
	for _, rr := range recs {
		rr.finish(reason)
	}
}

func (l *clientLink) newSession(events media.Events) (*remoteParticipant, error) {
	rp := &remoteParticipant{link: l, sid: "s" + strconv.FormatUint(l.nextSID.Add(1), 10), events: events}
	rp.init(true)
	if err := l.sessions.add(rp.sid, rp); err != nil {
		return nil, err
	}
	go rp.deliver()
	return rp, nil
}

// call sends a request and waits for its result; ok, if set, runs on the
// read loop on success (see pendingCall).
func (l *clientLink) call(ctx context.Context, m message, ok func()) (message, error) {
	m.ID = l.nextID.Add(1)
	ch := make(chan message, 1)
	l.mu.Lock()
	if l.ended != nil {
		l.mu.Unlock()
		return message{}, l.ended
	}
	l.pending[m.ID] = pendingCall{ch, ok}
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		delete(l.pending, m.ID)
		l.mu.Unlock()
	}
	if !l.ep.send(m) {
		forget()
		return message{}, fmt.Errorf("sfulink: link to %s is closing or congested: %w", l.c.url, media.ErrUnavailable)
	}
	var r message
	select {
	case r = <-ch:
	case <-l.over:
		// A result handled before the link ended still counts.
		select {
		case r = <-ch:
		default:
			return message{}, fmt.Errorf("sfulink: link to %s lost: %w", l.c.url, media.ErrUnavailable)
		}
	case <-ctx.Done():
		forget()
		return message{}, ctx.Err()
	}
	if err := remoteError(r); err != nil {
		return r, err
	}
	return r, nil
}

// remoteParticipant is a session on the remote node; its events are
// delivered to events through the inbox. A session whose join was not
// confirmed ends without Closed: its Join call fails instead.
type remoteParticipant struct {
	inbox[message]
	link   *clientLink
	sid    string
	events media.Events
}

// maxSessionEvents is how many of a session's events may wait for its
// receiver on the signal side, as many as a recording's control messages.
// A node that sends more has gone wrong: the session ends rather than let
// the queue grow without bound.
const maxSessionEvents = maxRecordEvents

var errSessionFlood = errors.New("the node sent more events of a session than signal holds")

// push queues an event of the node for the session, from the read loop; a
// flood ends the session with errSessionFlood and has the node close it.
func (rp *remoteParticipant) push(m message) {
	url := rp.link.c.url
	flooded := rp.enqueue(m, maxSessionEvents, func(queued int) error {
		return fmt.Errorf("sfulink: node %s: %d events of a session waiting: %w", url, queued, errSessionFlood)
	})
	if !flooded {
		return
	}
	rp.link.c.log.Warn("sfulink node flooded a session, closing it", "node", url, "queued", maxSessionEvents)
	rp.link.c.metrics.flood(floodSessionEvents)
	rp.link.sessions.take(rp.sid)
	rp.link.ep.send(message{Type: typeClose, SID: rp.sid})
}

// discard ends a session silently and at once, dropping queued events.
func (rp *remoteParticipant) discard() {
	rp.link.sessions.take(rp.sid)
	rp.drop()
}

func (rp *remoteParticipant) deliver() {
	defer rp.link.c.events.Done()
	final, _ := rp.run(rp.apply, nil)
	if final != nil {
		rp.events.Closed(final)
	}
}

func (rp *remoteParticipant) apply(m *message) {
	switch m.Type {
	case typeAnswer:
		rp.events.Answer(m.SDP)
	case typeOffer:
		rp.events.Offer(m.SDP)
	case typeSpeaker:
		rp.events.Speaker(m.Member)
	}
}

func (rp *remoteParticipant) call(m message) error {
	rp.mu.Lock()
	finished := rp.finished
	rp.mu.Unlock()
	if finished {
		return fmt.Errorf("sfulink: %s on a session that ended: %w", m.Type, errSessionEnded)
	}
	m.SID = rp.sid
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := rp.link.call(ctx, m, nil); err != nil {
		return fmt.Errorf("sfulink %s: %w", m.Type, err)
	}
	return nil
}

var errSessionEnded = errors.New("session ended")

// Offer implements media.Participant.
func (rp *remoteParticipant) Offer(sdp string) error {
	return rp.call(message{Type: typeOffer, SDP: sdp})
}

// Answer implements media.Participant.
func (rp *remoteParticipant) Answer(sdp string) error {
	return rp.call(message{Type: typeAnswer, SDP: sdp})
}

// Candidate implements media.Participant.
func (rp *remoteParticipant) Candidate(c webrtc.ICECandidateInit) error {
	return rp.call(message{Type: typeCandidate, Candidate: &c})
}

// View implements media.Participant.
func (rp *remoteParticipant) View(publisherID string, width, height int) error {
	return rp.call(message{Type: typeView, Publisher: publisherID, Width: width, Height: height})
}

// Close implements media.Participant: the node closes the session, and no
// event of it is delivered any more.
func (rp *remoteParticipant) Close() {
	if rp.drop() {
		return
	}
	rp.link.sessions.take(rp.sid)
	rp.link.ep.send(message{Type: typeClose, SID: rp.sid})
}
