// Package media owns the selective forwarding unit: one WebRTC peer
// connection per participant, every track a participant publishes forwarded
// to every other participant of the same room, and the server side of the
// renegotiation that adding and removing tracks needs.
//
// The SFU speaks SDP and ICE candidates through the Signaler each session
// is given; it knows nothing of WebSockets, accounts or lobbies, which stay
// in signaling.
package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// Signaler carries what the SFU says to one participant's browser, in
// order: an answer is always handed over before the next offer, so the
// browser never meets an offer while its own is unanswered. The SFU's
// descriptions carry all its candidates (a server gathers its few addresses
// at once), so nothing trickles from this side.
type Signaler interface {
	Answer(sdp string)
	Offer(sdp string)
}

// Config configures an SFU.
type Config struct {
	Log             *slog.Logger
	Settings        webrtc.SettingEngine
	ICEServers      []webrtc.ICEServer
	MaxParticipants int // per node; 0 for no limit
}

// ErrFull is returned when the node has no room for another participant,
// so the caller can pick another node.
var ErrFull = errors.New("media node full")

// SFU is an in-process media node.
type SFU struct {
	cfg Config
	api *webrtc.API

	mu           sync.Mutex
	rooms        map[string]*room
	participants int
}

// New returns an SFU with the default codecs (Opus, VP8, VP9, H.264, AV1)
// and interceptors (NACK, RTCP reports, TWCC).
func New(cfg Config) (*SFU, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	if cfg.Settings.LoggerFactory == nil {
		// pion's own logging names addresses; the SFU logs through slog.
		cfg.Settings.LoggerFactory = quietLogger{}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(cfg.Settings))
	return &SFU{cfg: cfg, api: api, rooms: map[string]*room{}}, nil
}

type room struct {
	id       string
	sessions map[string]*Session
	tracks   map[string]*forwarded // by publisher member id + track id
}

type forwarded struct {
	owner string
	track *webrtc.TrackLocalStaticRTP
	ssrc  webrtc.SSRC
	pc    *webrtc.PeerConnection // the publisher's, for keyframe requests
}

// Join opens a session for member in room. The browser then sends its
// offer through HandleOffer; the answer comes back through the Signaler.
func (s *SFU) Join(roomID, memberID string, out Signaler) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxParticipants > 0 && s.participants >= s.cfg.MaxParticipants {
		return nil, ErrFull
	}
	r, ok := s.rooms[roomID]
	if !ok {
		r = &room{id: roomID, sessions: map[string]*Session{}, tracks: map[string]*forwarded{}}
		s.rooms[roomID] = r
	}
	if old, ok := r.sessions[memberID]; ok {
		go old.Close() // a reconnecting member replaces its old session
	}
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.cfg.ICEServers})
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	sess := &Session{sfu: s, room: r, member: memberID, pc: pc, out: out, senders: map[string]*webrtc.RTPSender{}}
	r.sessions[memberID] = sess
	s.participants++
	sess.wire()
	// Everything already published in the room goes to the newcomer.
	for key, f := range r.tracks {
		if f.owner != memberID {
			sess.addLocked(key, f)
		}
	}
	s.cfg.Log.Info("sfu session opened", "room", roomID, "member", memberID)
	return sess, nil
}

// Load reports how many rooms and participants the node serves, so signal
// can choose the least-loaded node.
func (s *SFU) Load() (rooms, participants int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms), s.participants
}

// Close ends every session.
func (s *SFU) Close() {
	s.mu.Lock()
	var all []*Session
	for _, r := range s.rooms {
		for _, sess := range r.sessions {
			all = append(all, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.Close()
	}
}

type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}
