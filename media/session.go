package media

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Session is one participant's connection to the SFU.
type Session struct {
	sfu    *SFU
	room   *room
	member string
	pc     *webrtc.PeerConnection
	out    Events

	// Guarded by sfu.mu, like the room.
	senders map[string]*webrtc.RTPSender
	views   map[string][2]int // display size by publisher, for layer choice
	closed  bool

	negMu   sync.Mutex // one negotiation at a time
	pending bool       // tracks changed while a negotiation was under way
	early   []webrtc.ICECandidateInit
}

func (s *Session) wire() {
	s.pc.OnTrack(s.publish)
	s.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			s.end(errTransportFailed)
		}
	})
}

// Offer implements Participant.
func (s *Session) Offer(sdp string) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("remote offer: %w", err)
	}
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
	go s.negotiate() // tracks added before the first offer
	return nil
}

// applyEarlyCandidates adds candidates that arrived before the offer; the
// caller holds negMu.
func (s *Session) applyEarlyCandidates() {
	for _, c := range s.early {
		if err := s.pc.AddICECandidate(c); err != nil {
			s.sfu.cfg.Log.Debug("early candidate", "member", s.member, "err", err)
		}
	}
	s.early = nil
}

// Answer implements Participant.
func (s *Session) Answer(sdp string) error {
	s.negMu.Lock()
	err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	s.negMu.Unlock()
	if err != nil {
		return fmt.Errorf("remote answer: %w", err)
	}
	go s.negotiate() // changes that waited for this answer
	return nil
}

// Candidate implements Participant; a candidate that arrives before the
// offer it belongs to is kept until then.
func (s *Session) Candidate(c webrtc.ICECandidateInit) error {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if s.pc.RemoteDescription() == nil {
		if len(s.early) < 64 {
			s.early = append(s.early, c)
		}
		return nil
	}
	return s.pc.AddICECandidate(c)
}

// negotiate sends an offer when tracks changed and the connection is
// stable; otherwise it leaves the change pending for the next turn.
func (s *Session) negotiate() {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	if !s.pending || s.pc.RemoteDescription() == nil {
		return
	}
	if s.pc.SignalingState() != webrtc.SignalingStateStable {
		return
	}
	s.pending = false
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		s.sfu.cfg.Log.Warn("sfu offer", "member", s.member, "err", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		s.sfu.cfg.Log.Warn("sfu offer", "member", s.member, "err", err)
		return
	}
	<-gathered
	s.out.Offer(s.pc.LocalDescription().SDP)
}

func (s *Session) markPending() {
	s.negMu.Lock()
	s.pending = true
	s.negMu.Unlock()
}

// publish forwards a track the participant sends to everyone else in the
// room, from one reader goroutine that ends with the track.
func (s *Session) publish(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, remote.ID(), s.member+"/"+remote.StreamID())
	if err != nil {
		s.sfu.cfg.Log.Warn("sfu track", "member", s.member, "err", err)
		return
	}
	key := s.member + "/" + remote.ID()
	f := &forwarded{owner: s.member, track: local, ssrc: remote.SSRC(), pc: s.pc}
	s.sfu.mu.Lock()
	s.room.tracks[key] = f
	var others []*Session
	for _, o := range s.room.sessions {
		if o != s && o.addLocked(key, f) {
			others = append(others, o)
		}
	}
	s.sfu.mu.Unlock()
	for _, o := range others {
		go o.negotiate()
	}
	s.sfu.cfg.Log.Info("sfu track published", "room", s.room.id, "member", s.member, "kind", remote.Kind().String())

	buf := make([]byte, 1500)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			break
		}
		// Write fans out to every subscriber; a subscriber whose
		// transport is gone fails alone without stopping the others.
		if _, err := local.Write(buf[:n]); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			break
		}
	}
	s.unpublish(key)
}

// addLocked adds a forwarded track to this session; the caller holds
// sfu.mu and negotiates afterwards.
func (s *Session) addLocked(key string, f *forwarded) bool {
	if s.closed {
		return false
	}
	sender, err := s.pc.AddTrack(f.track)
	if err != nil {
		s.sfu.cfg.Log.Warn("sfu subscribe", "member", s.member, "err", err)
		return false
	}
	s.senders[key] = sender
	s.markPending()
	// Drain RTCP so interceptors run, and ask the publisher for a keyframe
	// whenever a subscriber reports loss of picture.
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					_ = f.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(f.ssrc)}})
				}
			}
		}
	}()
	// A new subscriber needs a keyframe to start decoding.
	_ = f.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(f.ssrc)}})
	return true
}

func (s *Session) unpublish(key string) {
	s.sfu.mu.Lock()
	delete(s.room.tracks, key)
	var changed []*Session
	for _, o := range s.room.sessions {
		if sender, ok := o.senders[key]; ok {
			_ = o.pc.RemoveTrack(sender)
			delete(o.senders, key)
			o.markPending()
			changed = append(changed, o)
		}
	}
	s.sfu.mu.Unlock()
	for _, o := range changed {
		go o.negotiate()
	}
}

// View implements Participant.
func (s *Session) View(publisherID string, width, height int) error {
	if width < 0 || height < 0 {
		return fmt.Errorf("view of %s: negative size", publisherID)
	}
	s.sfu.mu.Lock()
	defer s.sfu.mu.Unlock()
	if s.views == nil {
		s.views = map[string][2]int{}
	}
	s.views[publisherID] = [2]int{width, height}
	return nil
}

// Close implements Participant.
func (s *Session) Close() { s.end(nil) }

// errTransportFailed ends a session whose ICE or DTLS transport failed.
var errTransportFailed = errors.New("media transport failed")

// end closes the session and, when it ends for reason rather than at the
// caller's request, reports reason through Events.Closed.
func (s *Session) end(reason error) {
	s.sfu.mu.Lock()
	if s.closed {
		s.sfu.mu.Unlock()
		return
	}
	s.closed = true
	if s.room.sessions[s.member] == s {
		delete(s.room.sessions, s.member)
	}
	s.sfu.participants--
	if len(s.room.sessions) == 0 {
		delete(s.sfu.rooms, s.room.id)
	}
	s.sfu.mu.Unlock()
	_ = s.pc.Close() // ends the publish loops, which unpublish
	s.sfu.cfg.Log.Info("sfu session closed", "room", s.room.id, "member", s.member, "reason", reasonText(reason))
	if reason != nil {
		s.out.Closed(reason)
	}
}

func reasonText(err error) string {
	if err == nil {
		return "closed by signal"
	}
	return err.Error()
}
