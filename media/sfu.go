// Package media owns the selective forwarding unit: one WebRTC peer
// connection per participant, every track a participant publishes forwarded
// to every other participant of the same room, and the server side of the
// renegotiation that adding and removing tracks needs.
//
// The SFU speaks SDP and ICE candidates through the Events each session
// is given; it knows nothing of WebSockets, accounts or lobbies, which stay
// in signaling.
package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// Config configures an SFU.
type Config struct {
	Log             *slog.Logger
	Settings        webrtc.SettingEngine
	ICEServers      []webrtc.ICEServer
	MaxParticipants int // per node; 0 for no limit
}

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

// Join implements Node.
func (s *SFU) Join(ctx context.Context, roomID, memberID string, out Events) (Participant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxParticipants > 0 && s.participants >= s.cfg.MaxParticipants {
		return nil, fmt.Errorf("%d participants: %w", s.participants, ErrFull)
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

// Load implements Node.
func (s *SFU) Load() Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	tracks := 0
	for _, r := range s.rooms {
		tracks += len(r.tracks)
	}
	return Load{Rooms: len(s.rooms), Participants: s.participants, Tracks: tracks, MaxParticipants: s.cfg.MaxParticipants}
}

// ErrShutdown ends the sessions of a node that is shutting down.
var ErrShutdown = errors.New("media node shutting down")

// Close ends every session, reporting ErrShutdown to each participant.
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
		sess.end(ErrShutdown)
	}
}

type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}
