package media

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Session is one participant's connection to the SFU.
type Session struct {
	sfu     *SFU
	room    *room
	member  string
	pc      *webrtc.PeerConnection // nil on the node's own transport
	streams *connStreams           // reads what pion's connection receives
	wc      *wireSession           // the node's own transport (OwnTransport), or nil
	out     Events
	writer  *connWriter    // writes every track forwarded to the participant
	bwe     *leanBWE       // nil if the interceptor made none
	rtx     *retransmitter // nil if the interceptor made none

	// estimateOverride replaces the bandwidth estimate in tests that
	// simulate a bandwidth drop.
	estimateOverride atomic.Pointer[func() int]

	// Guarded by sfu.mu, like the room.
	downs      map[string]*downTrack // by publication key
	views      map[string][2]int     // display size by publisher, for layer choice
	closed     bool
	publishing int // tracks the last offer publishes, counted against MaxTracks
	// subscribed is set once the participant's first offer is applied;
	// only then does the session receive the room's tracks, each on a
	// transceiver of its own (see subscribeLocked).
	subscribed bool

	// The node's allocator goroutine owns alloc; woken is set while the
	// session waits in its queue (wake).
	alloc allocState
	woken atomic.Bool
	done  chan struct{} // closed when the session ends

	negMu   sync.Mutex  // one negotiation at a time
	pending atomic.Bool // tracks changed while a negotiation was under way
	// pendingSince is when pending was last set (the SFU's clock);
	// holding is set while a negotiation waits (negohold.go).
	pendingSince atomic.Int64
	holding      atomic.Bool
	// youngUntil ends the time in which the tracks the participant's first
	// offer declared are expected; guarded by sfu.mu.
	youngUntil int64
	early      []webrtc.ICECandidateInit
}

// requestKeyframes asks for a keyframe of every video the session
// receives, once its transport is up: a keyframe its tracks asked for when
// they were bound, during the first offer, came before SRTP was set up and
// was not sent, and without this the subscriber would wait for its
// track's next retry (keyframeRetry) before its first frame.
func (s *Session) requestKeyframes() {
	s.sfu.mu.Lock()
	var video []*downTrack
	for _, d := range s.downs {
		if d.kind == kindVideo && !d.paused.Load() {
			video = append(video, d)
		}
	}
	s.sfu.mu.Unlock()
	for _, d := range video {
		d.pub.requestFirstKeyframe(int(d.target.Load()))
	}
}

// Offer implements Participant. An offer that would publish more tracks
// than the node's MaxTracks allows is refused with an error wrapping
// ErrFull, before it is applied.
func (s *Session) Offer(offer string) error {
	if err := s.reserveTracks(offer); err != nil {
		return err
	}
	if s.wc != nil {
		return s.offerWire(offer)
	}
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("remote offer: %w", err)
	}
	s.subscribeRoom()
	s.applyEarlyCandidates()
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("local answer: %w", err)
	}
	<-gathered
	s.out.Answer(s.pc.LocalDescription().SDP)
	s.sfu.goOwned(s.negotiate) // tracks added before the first offer
	return nil
}

// reserveTracks counts the tracks an offer publishes and holds them
// against the node's limit.
func (s *Session) reserveTracks(offer string) error {
	n, err := publishedTracks(offer)
	if err != nil {
		return fmt.Errorf("remote offer: %w", err)
	}
	s.sfu.mu.Lock()
	defer s.sfu.mu.Unlock()
	if s.closed {
		return fmt.Errorf("offer of %s: %w", s.member, errSessionClosed)
	}
	limit := s.sfu.cfg.MaxTracks
	if total := s.sfu.tracks - s.publishing + n; limit > 0 && n > s.publishing && total > limit {
		return fmt.Errorf("%d tracks published, %d more offered: %w", s.sfu.tracks, n-s.publishing, ErrFull)
	}
	s.sfu.tracks += n - s.publishing
	s.publishing = n
	return nil
}

var errSessionClosed = errors.New("session closed")

// publishedTracks counts the audio and video sections an offer sends a
// track on (simulcast layers are one track).
func publishedTracks(offer string) (int, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range d.MediaDescriptions {
		if k := m.MediaName.Media; k != "audio" && k != "video" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped section
		}
		sends := true
		for _, a := range m.Attributes {
			switch a.Key {
			case "recvonly", "inactive":
				sends = false
			}
		}
		_, hasMsid := m.Attribute("msid")
		_, hasSSRC := m.Attribute("ssrc")
		_, hasRID := m.Attribute("rid")
		if sends && (hasMsid || hasSSRC || hasRID) {
			n++
		}
	}
	return n, nil
}

// Answer implements Participant.
func (s *Session) Answer(answer string) error {
	if s.wc != nil {
		return s.answerWire(answer)
	}
	s.negMu.Lock()
	err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	s.negMu.Unlock()
	if err != nil {
		return fmt.Errorf("remote answer: %w", err)
	}
	s.sfu.goOwned(s.negotiate) // changes that waited for this answer
	return nil
}

// Candidate implements Participant; a candidate that arrives before the
// offer it belongs to is kept until then. The node's own transport, an
// ICE-lite agent, learns the participant's addresses from its checks
// and needs none.
func (s *Session) Candidate(c webrtc.ICECandidateInit) error {
	if s.wc != nil {
		return nil
	}
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if s.pc.RemoteDescription() == nil {
		if len(s.early) < 64 {
			s.early = append(s.early, c)
		}
		return nil
	}
	if err := s.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	return nil
}

// negotiate sends an offer when tracks changed and the connection is
// stable; otherwise it leaves the change pending for the next turn.
func (s *Session) negotiate() {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if !s.pending.Load() {
		return
	}
	if s.wc != nil {
		s.negotiateWire()
		return
	}
	if s.pc.RemoteDescription() == nil {
		return
	}
	if s.pc.SignalingState() != webrtc.SignalingStateStable {
		return
	}
	if d := s.holdFor(); d > 0 {
		s.negotiateAfter(d)
		return
	}
	s.pending.Store(false)
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		s.sfu.log.Warn("sfu offer", "member", s.member, "err", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		s.sfu.log.Warn("sfu offer", "member", s.member, "err", err)
		return
	}
	<-gathered
	s.out.Offer(s.offerToSend())
}

// publish makes a received track, or one layer of it (desc.rid), whose
// packets come on ssrc, a publication of the room's, or a layer of one.
func (s *Session) publish(desc trackDesc, ssrc uint32) (*publication, int, *layer, bool) {
	key := s.member + "/" + desc.id
	s.sfu.mu.Lock()
	if s.closed {
		s.sfu.mu.Unlock()
		return nil, 0, nil, false
	}
	pub := s.room.pubs[key]
	fresh := pub == nil || pub.owner != s
	if fresh {
		pub = newPublication(s, desc)
		s.room.pubs[key] = pub
	}
	idx := pub.layerIndex(desc.rid)
	l := &layer{rid: desc.rid, ssrc: ssrc, winStart: s.sfu.now()}
	l.last.Store(l.winStart)
	l.lastPLI.Store(l.winStart - keyframeInterval) // the first request goes out at once
	l.lastKey.Store(l.winStart - keyframeInterval)
	pub.layers[idx].Store(l)
	pub.readers++
	var changed []*Session
	for rec := range s.room.recs {
		if fresh {
			rec.addLocked(pub)
		} else {
			rec.wake()
		}
	}
	for _, o := range s.room.sessions {
		if o == s {
			continue
		}
		if fresh {
			if o.subscribed && o.subscribeLocked(pub, false) {
				changed = append(changed, o)
			}
		} else {
			o.wake() // a new layer to choose from
		}
	}
	s.sfu.mu.Unlock()
	for _, o := range changed {
		s.sfu.goOwned(o.negotiate)
	}
	s.sfu.log.Info("sfu track published", "room", s.room.id, "member", s.member,
		"kind", pub.webrtcKind().String(), "rid", desc.rid, "codec", desc.codec.MimeType)
	return pub, idx, l, true
}

// unpublishLayer takes a layer that ended off its publication, and the
// publication off the room once it has no layer left.
func (s *Session) unpublishLayer(pub *publication, idx int, l *layer) {
	var changed []*Session
	s.sfu.mu.Lock()
	if pub.layers[idx].Load() == l {
		pub.layers[idx].Store(nil)
	}
	pub.readers--
	if pub.readers == 0 {
		changed = s.sfu.unpublishLocked(pub)
	}
	s.sfu.mu.Unlock()
	for _, o := range changed {
		s.sfu.goOwned(o.negotiate)
	}
}

// subscribeLocked forwards pub to this session, on a section the
// participant's offer being answered receives on (onOffered, see
// subscribeRoom) or else on a transceiver of its own for the next offer;
// the caller holds sfu.mu and negotiates afterwards.
func (s *Session) subscribeLocked(pub *publication, onOffered bool) bool {
	if s.closed {
		return false
	}
	if s.writer == nil {
		w := newConnWriter(s.sfu, s.pc)
		if s.wc != nil {
			w.follows(s.wc.conn.udpRemote)
		}
		if !s.sfu.goOwned(func() { w.run(s.done) }) {
			return false
		}
		s.writer = w
	}
	d := newDownTrack(pub, s)
	d.w = s.writer
	if v, ok := s.views[pub.owner.member]; ok && d.kind == kindVideo && (v[0] == 0 || v[1] == 0) {
		d.paused.Store(true) // a screen share of a member whose video is hidden
	}
	if s.wc != nil {
		d.desc = s.wc.newTrack(pub) // offered or placed as it negotiates (wiresession.go)
	} else {
		sender, err := s.sendOn(d, onOffered)
		if err != nil {
			s.sfu.log.Warn("sfu subscribe", "member", s.member, "err", err)
			return false
		}
		d.sender = sender
	}
	if old := s.downs[pub.key]; old != nil {
		old.stop()
	}
	s.downs[pub.key] = d
	s.writer.add(d)
	subs := append(append([]*downTrack(nil), *pub.subs.Load()...), d)
	pub.subs.Store(&subs)
	if !onOffered {
		s.markPending()
	}
	return true
}

// unpublishLocked removes a publication that ended from its room and its
// subscribers, returning the sessions to renegotiate; the caller holds
// sfu.mu.
func (s *SFU) unpublishLocked(pub *publication) []*Session {
	if pub.owner.room.pubs[pub.key] == pub {
		delete(pub.owner.room.pubs, pub.key)
	}
	var changed []*Session
	for _, d := range *pub.subs.Load() {
		d.stop()
		if d.rec != nil {
			d.rec.trackEndedLocked(d)
			continue
		}
		o := d.sub
		if o.downs[pub.key] != d {
			continue
		}
		delete(o.downs, pub.key)
		if !o.closed {
			if o.pc != nil {
				_ = o.pc.RemoveTrack(d.sender)
			}
			o.markPending()
			changed = append(changed, o)
		}
	}
	pub.subs.Store(&[]*downTrack{})
	return changed
}

// View implements Participant.
func (s *Session) View(publisherID string, width, height int) error {
	if width < 0 || height < 0 {
		return fmt.Errorf("view of %s: negative size", publisherID)
	}
	s.sfu.mu.Lock()
	if s.views == nil {
		s.views = map[string][2]int{}
	}
	s.views[publisherID] = [2]int{width, height}
	for _, d := range s.downs {
		if d.pub.owner.member == publisherID {
			d.setPaused(width == 0 || height == 0)
		}
	}
	s.sfu.mu.Unlock()
	s.wake()
	return nil
}

// Close implements Participant.
func (s *Session) Close() { s.end(nil) }

// errTransportFailed ends a session whose ICE or DTLS transport failed.
var errTransportFailed = errors.New("media transport failed")

// end closes the session and, when it ends for reason rather than at the
// caller's request, reports reason through Events.Closed.
func (s *Session) end(reason error) {
	sfu := s.sfu
	sfu.mu.Lock()
	if s.closed {
		sfu.mu.Unlock()
		return
	}
	s.closed = true
	r := s.room
	if r.sessions[s.member] == s {
		delete(r.sessions, s.member)
	}
	sfu.participants--
	sfu.tracks -= s.publishing
	s.publishing = 0
	for key, d := range s.downs {
		d.pub.removeSubLocked(d)
		d.stop()
		delete(s.downs, key)
	}
	if len(r.sessions) == 0 && sfu.rooms[r.id] == r {
		delete(sfu.rooms, r.id)
		for rec := range r.recs {
			rec.finishLocked(ErrRoomClosed)
		}
	}
	close(s.done)
	sfu.mu.Unlock()
	if s.wc != nil {
		s.closeWire()
	} else {
		_ = s.pc.Close() // ends the publishers' readers, which unpublish
	}
	sfu.log.Info("sfu session closed", "room", r.id, "member", s.member, "reason", reasonText(reason))
	if reason != nil {
		s.out.Closed(reason)
	}
}

// removeSubLocked takes d off the publication's subscriber list; the
// caller holds sfu.mu.
func (pub *publication) removeSubLocked(d *downTrack) {
	old := *pub.subs.Load()
	subs := make([]*downTrack, 0, len(old))
	for _, o := range old {
		if o != d {
			subs = append(subs, o)
		}
	}
	pub.subs.Store(&subs)
}

func reasonText(err error) string {
	if err == nil {
		return "closed by signal"
	}
	return strings.TrimSpace(err.Error())
}
