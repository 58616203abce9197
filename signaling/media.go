package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// MediaNode is the media node, or pool of nodes, that a consult moves to
// when it grows beyond two members: the in-process SFU in development, the
// authenticated link to remote nodes in production.
type MediaNode interface {
	Join(ctx context.Context, roomID, memberID string, events media.Events) (media.Participant, error)
}

// The consult's media routes.
const (
	RouteP2P = "p2p" // browsers connect to each other
	RouteSFU = "sfu" // browsers connect to the media node
)

// SFUPeer is the `to` and `from` of messages between a member and its
// session on the media node. Member ids never take this form.
const SFUPeer = "sfu"

// ErrMediaUnavailable tells a member that no media node could take it; its
// browser stays peer to peer.
var ErrMediaUnavailable = &ProtoError{"media-unavailable", "no media server can take this consult now"}

// ErrNotRouted refuses media node messages in a consult that is peer to peer.
var ErrNotRouted = &ProtoError{"not-routed", "this consult is not on the media server"}

// mediaJobs bounds the node requests a member may have in flight; a burst of
// candidates fits many times over.
const mediaJobs = 128

// mediaJoinTimeout bounds how long joining a node may take.
const mediaJoinTimeout = 15 * time.Second

// mediaLink is one member's connection to the media node. Requests to the
// node may block for a network round trip, so they run in order on the
// link's own goroutine, never under the room's lock; the node's events
// come back through a nodeSession, which takes the room's lock to send.
type mediaLink struct {
	room   *Room
	member *Member
	jobs   chan func(ctx context.Context)
	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the link's goroutine.
	session *nodeSession
}

func newMediaLink(r *Room, m *Member) *mediaLink {
	ctx, cancel := context.WithCancel(context.Background())
	l := &mediaLink{room: r, member: m, jobs: make(chan func(context.Context), mediaJobs), ctx: ctx, cancel: cancel}
	r.deps.links.Go(l.run)
	return l
}

func (l *mediaLink) run() {
	defer func() {
		if l.session != nil {
			l.session.active.Store(false)
			l.session.participant.Close()
		}
	}()
	for {
		select {
		case <-l.ctx.Done():
			return
		case job := <-l.jobs:
			job(l.ctx)
		}
	}
}

// enqueue hands a request to the link's goroutine; the caller holds the
// room's lock.
func (l *mediaLink) enqueue(job func(context.Context)) error {
	select {
	case l.jobs <- job:
		return nil
	default:
		return ErrRateLimited
	}
}

// stop ends the member's node session without waiting; the caller may hold
// the room's lock.
func (l *mediaLink) stop() { l.cancel() }

// join replaces the member's node session with a new one; it runs on the
// link's goroutine.
func (l *mediaLink) join(ctx context.Context, ref string) {
	if l.session != nil {
		l.session.active.Store(false)
		l.session.participant.Close()
		l.session = nil
	}
	s := &nodeSession{link: l}
	s.active.Store(true)
	jctx, cancel := context.WithTimeout(ctx, mediaJoinTimeout)
	p, err := l.room.deps.Media.Join(jctx, l.room.ID, l.member.ID, s)
	cancel()
	if err != nil {
		s.active.Store(false)
		l.room.deps.Log.Warn("media node join refused", "consult", l.room.ID, "member", l.member.ID, "full", errors.Is(err, media.ErrFull), "err", err)
		l.reply(ref, ErrMediaUnavailable)
		return
	}
	s.participant = p
	l.session = s
	l.room.deps.Log.Info("member joined the media node", "consult", l.room.ID, "member", l.member.ID)
	l.room.nodeJoined(l.member, s)
}

// call runs one request on the current node session.
func (l *mediaLink) call(ref string, bad *ProtoError, f func(media.Participant) error) func(context.Context) {
	return func(context.Context) {
		if l.session == nil || !l.session.active.Load() {
			l.reply(ref, ErrNoMember)
			return
		}
		if err := f(l.session.participant); err != nil {
			l.room.deps.Log.Debug("media node request refused", "consult", l.room.ID, "member", l.member.ID, "err", err)
			l.reply(ref, bad)
		}
	}
}

// reply sends an error for an asynchronous request.
func (l *mediaLink) reply(ref string, e *ProtoError) {
	r := l.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[l.member.ID] == l.member {
		l.member.sendError(ref, e)
	}
}

// nodeSession receives one node session's events. A replaced or closed
// session goes inactive, so its late events reach nobody.
type nodeSession struct {
	link        *mediaLink
	participant media.Participant
	active      atomic.Bool
}

func (s *nodeSession) deliver(msg []byte) {
	r, m := s.link.room, s.link.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.active.Load() && r.members[m.ID] == m {
		m.send(msg)
	}
}

// Answer implements media.Events.
func (s *nodeSession) Answer(sdp string) {
	s.deliver(encode(relayedMsg{Type: "answer", From: SFUPeer, SDP: sdp}))
}

// Offer implements media.Events.
func (s *nodeSession) Offer(sdp string) {
	s.deliver(encode(relayedMsg{Type: "offer", From: SFUPeer, SDP: sdp}))
}

// Speaker implements media.Events: every session of the room reports the
// same change, and the room passes it on once.
func (s *nodeSession) Speaker(memberID string) {
	if !s.active.Load() {
		return
	}
	r := s.link.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.speaker == memberID || r.ended {
		return
	}
	r.speaker = memberID
	msg := encode(speakerMsg{Type: "speaker", Member: memberID})
	for _, p := range r.members {
		if p.admitted {
			p.send(msg)
		}
	}
}

// Closed implements media.Events: the member's browser must connect to the
// node again, which lands on another node when this one was lost.
func (s *nodeSession) Closed(err error) {
	if !s.active.CompareAndSwap(true, false) {
		return
	}
	r, m := s.link.room, s.link.member
	r.deps.Log.Warn("media node session ended", "consult", r.ID, "member", m.ID, "lost", errors.Is(err, media.ErrUnavailable), "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.ID] == m {
		m.onNode = false
	}
	if r.members[m.ID] == m && !r.ended && r.route == RouteSFU {
		m.send(encode(routeMsg{Type: "route", Route: RouteSFU, Restart: true}))
	}
}

// moveToNodeLocked moves the consult to the media node once it has enough
// admitted members, or is to be recorded; returnToPeersLocked may move it
// back.
func (r *Room) moveToNodeLocked() {
	if r.route == RouteSFU || r.deps.Media == nil {
		return
	}
	admitted := r.admittedLocked()
	if admitted < r.deps.SFUMinParticipants && !r.recordingLocked() {
		return
	}
	r.route, r.below = RouteSFU, time.Time{}
	r.deps.Log.Info("consult moved to the media node", "consult", r.ID, "members", admitted)
	msg := encode(routeMsg{Type: "route", Route: RouteSFU})
	for _, p := range r.members {
		if p.admitted {
			p.send(msg)
		}
	}
}

// returnToPeersLocked moves a consult on the media node back to peer to
// peer once it has had fewer members than moved it there for
// SFUReturnAfter: with two members a direct connection has less delay, and
// its media is encrypted end to end instead of being decrypted on the
// node. Browsers keep their node connection until direct media flows, then
// send sfu-leave. The hub's sweep calls it every second.
func (r *Room) returnToPeersLocked(now time.Time) {
	if r.route != RouteSFU || r.deps.SFUReturnAfter <= 0 || r.ended {
		return
	}
	if r.admittedLocked() >= r.deps.SFUMinParticipants || r.recordingLocked() {
		r.below = time.Time{}
		return
	}
	if r.below.IsZero() {
		r.below = now
		return
	}
	if now.Sub(r.below) < r.deps.SFUReturnAfter {
		return
	}
	r.moveToPeersLocked()
}

// moveToPeersLocked tells the admitted members to go back to direct
// connections.
func (r *Room) moveToPeersLocked() {
	r.route, r.below = RouteP2P, time.Time{}
	r.deps.Log.Info("consult moved back to peer to peer", "consult", r.ID, "members", r.admittedLocked())
	msg := encode(routeMsg{Type: "route", Route: RouteP2P})
	for _, p := range r.members {
		if p.admitted {
			p.send(msg)
		}
	}
}

func (r *Room) admittedLocked() int {
	n := 0
	for _, p := range r.members {
		if p.admitted {
			n++
		}
	}
	return n
}

// link returns m's media link, for a message to the node. A member keeps
// talking to the node while the consult moves back to peer to peer, until
// its direct media flows and it sends sfu-leave.
func (r *Room) link(m *Member) (*mediaLink, error) {
	if m.media != nil {
		return m.media, nil
	}
	if r.route != RouteSFU {
		return nil, ErrNotRouted
	}
	return nil, ErrNoMember // sfu-join comes first
}

// sfuLeave ends m's node session: its browser has direct media from every
// member after a move back to peer to peer.
func (r *Room) sfuLeave(m *Member, _ json.RawMessage) error {
	if m.media == nil {
		return ErrNoMember
	}
	m.dropMediaLocked()
	return nil
}

// sfuJoinInterval is the least time between two sfu-join of a member:
// each opens a peer connection on the node, which a page does on a move,
// a restart or a reload, not many times a second.
const sfuJoinInterval = time.Second

func (r *Room) sfuJoin(m *Member, raw json.RawMessage) error {
	if r.route != RouteSFU {
		return ErrNotRouted
	}
	now := r.deps.Now()
	if !m.lastSFUJoin.IsZero() && now.Sub(m.lastSFUJoin) < sfuJoinInterval {
		return ErrRateLimited
	}
	m.lastSFUJoin = now
	if m.media == nil {
		m.media = newMediaLink(r, m)
	}
	l, ref := m.media, envelopeID(raw)
	return l.enqueue(func(ctx context.Context) { l.join(ctx, ref) })
}

// toNode sends an offer, answer or candidate addressed to SFUPeer.
func (r *Room) toNode(m *Member, raw json.RawMessage, kind string, sdp string, candidate json.RawMessage) error {
	l, err := r.link(m)
	if err != nil {
		return err
	}
	ref := envelopeID(raw)
	switch kind {
	case "offer":
		return l.enqueue(l.call(ref, ErrBadSDP, func(p media.Participant) error { return p.Offer(sdp) }))
	case "answer":
		return l.enqueue(l.call(ref, ErrBadSDP, func(p media.Participant) error { return p.Answer(sdp) }))
	default:
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal(candidate, &c); err != nil || c.Candidate == "" && c.SDPMid == nil {
			return ErrBadField
		}
		return l.enqueue(l.call(ref, ErrBadField, func(p media.Participant) error { return p.Candidate(c) }))
	}
}

// maxViewPixels bounds a reported display size.
const maxViewPixels = 8192

func (r *Room) view(m *Member, raw json.RawMessage) error {
	var in viewIn
	if err := decode(raw, &in); err != nil {
		return err
	}
	if in.Width < 0 || in.Height < 0 || in.Width > maxViewPixels || in.Height > maxViewPixels {
		return ErrBadField
	}
	if _, err := r.peer(m, in.Member); err != nil {
		return err
	}
	l, err := r.link(m)
	if err != nil {
		return err
	}
	return l.enqueue(l.call(envelopeID(raw), ErrBadField, func(p media.Participant) error { return p.View(in.Member, in.Width, in.Height) }))
}

// dropMediaLocked ends m's node session: m left the room for good, or has
// direct media again after a move back to peer to peer.
func (m *Member) dropMediaLocked() {
	m.onNode = false
	if m.media != nil {
		m.media.stop()
		m.media = nil // a later sfu-join starts a new link
	}
}

func envelopeID(raw json.RawMessage) string {
	var env envelope
	_ = json.Unmarshal(raw, &env)
	return env.ID
}
