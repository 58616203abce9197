// Package media owns the selective forwarding unit (SFU): one WebRTC peer
// connection per participant, every track a participant publishes
// forwarded to every other participant of the same room, and the server
// side of the renegotiation that adding and removing tracks needs.
//
// What it does with the media, file by file:
//
//   - engine.go: the pion API with each interceptor chosen on purpose —
//     the node's RTCP, simulcast and audio level header extensions.
//   - rtcpsched.go, rtcpstreams.go, twccsend.go: NACKs, receiver reports
//     and TWCC feedback toward publishers and sender reports toward
//     subscribers, written by one goroutine of the node.
//   - bwe.go: the congestion controller toward subscribers, run once per
//     transport-wide feedback report, which twcc.go reads in place.
//   - rtpattrs.go: one parsed RTP header per received packet for all of
//     pion's interceptors, and no RTCP parsing where none is needed.
//   - packet.go: a received RTP packet, shared by its subscribers, in a
//     buffer of its size class.
//   - srtpbuf.go: received SRTP and SRTCP queued in buffers the node
//     shares.
//   - publish.go: a published track and its simulcast layers, and
//     throttled keyframe requests.
//   - streams.go: what a connection receives, RTP and RTCP, read and acted
//     upon on the goroutine of pion's that decrypted it, with no reader
//     goroutine per stream.
//   - forward.go: a track as one subscriber receives it, with a bounded
//     queue of its own, so a slow subscriber only ever loses its own
//     packets; sequence numbers and timestamps are rewritten into one
//     continuous stream.
//   - connwriter.go: one writer goroutine per subscriber connection, which
//     writes the queues of all its tracks, each pass as one burst that
//     leaves the shared UDP port in one sendmmsg (udpburst_linux.go).
//   - simulcast.go: which layer each subscriber gets, from the size it
//     shows the video at and its bandwidth estimate. Browsers name their
//     layers by rid: "q", "h", "f" (quarter, half, full resolution; what
//     the web app sets in sendEncodings) or "low", "mid", "high"; other
//     names rank in the order their first packets arrive.
//   - speaker.go: the active speaker of each room, from RFC 6464 levels.
//   - rtcp.go: subscribers' keyframe requests passed to publishers, and
//     publishers' RTCP read so their sender reports are answered.
//   - nackcache.go: subscribers' NACKs answered from the publication's own
//     reference-counted packets, with each subscriber's rewritten numbers.
//   - recorder.go: the Recorder, one more subscriber in a room that takes
//     every member's audio and best video layer, through the same
//     downTrack queues and rewriting, and hands them to a RecordSink.
//   - network.go: one UDP port, one ICE-TCP port, 1:1 NAT addresses.
//   - udpmux.go: the shared UDP port's datagrams routed to each peer
//     connection's ICE agent, queued in the packets' pooled buffers.
//   - udpbatch_linux.go: the shared UDP port read with recvmmsg and
//     written with sendmmsg.
//   - wirestreams.go: the same interceptor chain run on the node's own
//     transport (media/wire: ICE-lite, DTLS and SRTP on the shared port,
//     no goroutine per stream or connection), with received packets read
//     up the chain on the goroutine that decrypted them.
//   - wireconn.go: a participant's connection on that transport, with the
//     node's own offer/answer (media/sdpneg): what pion's PeerConnection
//     does for a session, without its goroutines.
//   - wiresession.go, wirenet.go: sessions on that connection
//     (Config.OwnTransport): received streams published and forwarded on
//     the goroutine that decrypted them, subscriptions negotiated and
//     bound, subscribers' feedback acted on; and the shared port, the
//     certificate and the candidates every session uses.
//   - metrics.go: Prometheus series, without room or member ids.
//
// The SFU speaks SDP and ICE candidates through the Events each session is
// given; it knows nothing of WebSockets, accounts or lobbies, which stay in
// signaling.
package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an SFU.
type Config struct {
	Log             *slog.Logger
	Settings        webrtc.SettingEngine
	ICEServers      []webrtc.ICEServer
	MaxParticipants int // per node; 0 for no limit
	// MaxTracks limits the tracks published on the node (a simulcast
	// video is one track); an offer that would exceed it is refused with
	// an error wrapping ErrFull. 0 for no limit.
	MaxTracks int

	// UDPListen is the one UDP address every peer connection shares, such
	// as ":7882"; empty for an ephemeral port per connection.
	UDPListen string
	// TCPListen is the passive ICE-TCP address, such as ":7881", for
	// browsers whose networks block UDP; empty for none. It sets
	// Settings' network types to UDP and TCP, since pion's default would
	// leave the port unannounced.
	TCPListen string
	// PublicIPs are advertised instead of the host's addresses, for a
	// node behind a 1:1 NAT (a cloud VM with a public IP mapped to it).
	PublicIPs []string
	// OwnTransport runs every session on the node's own transport
	// (media/wire: ICE-lite, DTLS and SRTP on the shared UDP port, and
	// its own offer/answer) instead of pion's PeerConnection: a few
	// goroutines per participant instead of some fifteen, and no hand-off
	// between the socket and the node. It needs UDPListen.
	OwnTransport bool

	// Metrics, when set, receives the SFU's Prometheus collectors.
	Metrics prometheus.Registerer
}

// SFU is an in-process media node.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	api     *connAPI
	bufs    srtpBuffers
	metrics *metrics
	pool    *packetPool
	epoch   time.Time
	closers []io.Closer
	sockets udpSockets // the shared UDP sockets that hold bursts (burst.go)
	wire    *wireNet   // the node's own transport; nil for pion's (OwnTransport)

	// estimators hands each connection's bandwidth estimator from the
	// interceptor that makes it to Join, by peer connection id.
	estimators sync.Map
	// retransmitters hands each connection's RTX sender to Join the same
	// way.
	retransmitters sync.Map

	mu           sync.Mutex
	rooms        map[string]*room
	participants int
	tracks       int // published tracks declared in offers
	recordings   int

	// The layer allocator of every session (allocLoop): sessions to run
	// now; allocStop ends it, the speaker loop and the RTCP scheduler.
	allocWake chan *Session
	allocStop chan struct{}

	// Goroutines the SFU starts; Close waits for them.
	gmu     sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// New returns an SFU with the default codecs (Opus, VP8, VP9, H.264, AV1),
// listening on cfg's shared ports if any.
func New(cfg Config) (*SFU, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Settings.LoggerFactory == nil {
		// pion's own logging names addresses; the SFU logs through slog.
		cfg.Settings.LoggerFactory = quietLogger{}
	}
	// AES-128-GCM first: as safe as AES-256-GCM for SRTP's short-lived
	// keys and cheaper, and both far cheaper than AES-CM with HMAC-SHA1,
	// kept last for older clients. pion's default, and browsers', put
	// AES-256-GCM first; the DTLS server's order decides, so the node
	// answers as the server (a=setup:passive, RFC 8842 section 5.1).
	cfg.Settings.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if err := cfg.Settings.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, fmt.Errorf("dtls role: %w", err)
	}
	// No HelloVerifyRequest round trip before the handshake: ICE already
	// keeps the DTLS server from answering an address it has not checked
	// (docs/operations.md, "DTLS without the cookie exchange").
	cfg.Settings.SetDTLSInsecureSkipHelloVerify(true)
	pool := newPacketPool()
	bufs := newSRTPBuffers(pool)
	// Received SRTP and SRTCP queue in buffers the node shares
	// (srtpbuf.go), not in one that only grows per stream; each
	// connection's come from its streams (streams.go), which replace
	// any factory set here.
	cfg.Settings.BufferFactory = bufs.new
	s := &SFU{cfg: cfg, log: cfg.Log, pool: pool, bufs: bufs, epoch: time.Now(), rooms: map[string]*room{},
		allocWake: make(chan *Session, 256), allocStop: make(chan struct{})}
	m, err := newMetrics(cfg.Metrics, s.Load)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.closers, err = listen(&s.cfg, bufs, &s.sockets); err != nil {
		return nil, err
	}
	if cfg.OwnTransport {
		if s.wire, err = listenWire(&s.cfg, &s.sockets); err != nil {
			s.closeListeners()
			return nil, err
		}
		s.closers = append(s.closers, s.wire)
	}
	rtcpSched := newRTCPScheduler(s.epoch)
	if s.api, err = newAPI(s.cfg.Settings, &s.estimators, &s.retransmitters, m, rtcpSched); err != nil {
		s.closeListeners()
		return nil, err
	}
	s.goOwned(s.allocLoop)
	s.goOwned(s.speakerLoop)
	s.goOwned(func() { rtcpSched.run(s.allocStop) })
	return s, nil
}

// Addrs returns the addresses of the shared UDP and ICE-TCP ports.
func (s *SFU) Addrs() []net.Addr { return listenAddrs(s.closers) }

// now is the SFU's monotonic clock in nanoseconds, cheap enough for every
// packet.
func (s *SFU) now() int64 { return int64(time.Since(s.epoch)) }

// goOwned runs f on a goroutine Close waits for; it reports false, and
// runs nothing, once Close has begun.
func (s *SFU) goOwned(f func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// enter counts the calling goroutine (one pion started) as the SFU's until
// it calls s.wg.Done.
func (s *SFU) enter() bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

type room struct {
	id       string
	sessions map[string]*Session
	pubs     map[string]*publication // by publisher member id + "/" + track id
	speaker  string
	det      *speakerDetector // owned by the node's speaker loop
	recs     map[*recording]struct{}
}

// Join implements Node.
func (s *SFU) Join(ctx context.Context, roomID, memberID string, out Events) (Participant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.gmu.Lock()
	closing := s.closing
	s.gmu.Unlock()
	if closing {
		return nil, fmt.Errorf("join %s: %w: %w", roomID, ErrShutdown, ErrUnavailable)
	}
	s.mu.Lock()
	if s.cfg.MaxParticipants > 0 && s.participants >= s.cfg.MaxParticipants {
		n := s.participants
		s.mu.Unlock()
		return nil, fmt.Errorf("%d participants: %w", n, ErrFull)
	}
	sess := &Session{sfu: s, member: memberID, out: out,
		downs: map[string]*downTrack{}, alloc: allocState{cap: map[*downTrack]int{}}, done: make(chan struct{})}
	if err := s.connect(sess); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	r, ok := s.rooms[roomID]
	if !ok {
		r = &room{id: roomID, sessions: map[string]*Session{}, pubs: map[string]*publication{}, det: newSpeakerDetector(),
			recs: map[*recording]struct{}{}}
		s.rooms[roomID] = r
	}
	var old *Session
	if o, ok := r.sessions[memberID]; ok {
		old = o // a reconnecting member replaces its old session
	}
	sess.room = r
	r.sessions[memberID] = sess
	s.participants++
	// The room's tracks go to the newcomer with its first offer.
	speaker := r.speaker
	s.mu.Unlock()
	if old != nil {
		s.goOwned(func() { old.end(nil) })
	}
	if speaker != "" {
		out.Speaker(speaker)
	}
	s.log.Info("sfu session opened", "room", roomID, "member", memberID)
	return sess, nil
}

// connect makes the session's transport: a connection on the node's own
// transport (OwnTransport), or pion's peer connection; the caller holds
// s.mu.
func (s *SFU) connect(sess *Session) error {
	if s.wire != nil {
		return sess.openWire()
	}
	hub := newConnStreams(s.bufs)
	pc, err := s.api.newPeerConnection(webrtc.Configuration{ICEServers: s.cfg.ICEServers}, hub)
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	sess.pc, sess.streams = pc, hub
	if e, ok := s.estimators.LoadAndDelete(pc.ID()); ok {
		sess.bwe = e.(*leanBWE)
	}
	if r, ok := s.retransmitters.LoadAndDelete(pc.ID()); ok {
		sess.rtx = r.(*retransmitter)
	}
	sess.watchPion()
	return nil
}

// Load implements Node.
func (s *SFU) Load() Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Load{Rooms: len(s.rooms), Participants: s.participants, Tracks: s.tracks,
		MaxParticipants: s.cfg.MaxParticipants, MaxTracks: s.cfg.MaxTracks, Recordings: s.recordings}
}

// ErrShutdown ends the sessions of a node that is shutting down.
var ErrShutdown = errors.New("media node shutting down")

// Close ends every session, reporting ErrShutdown to each participant,
// closes the shared ports and waits for every goroutine the SFU started.
func (s *SFU) Close() {
	s.gmu.Lock()
	if s.closing {
		s.gmu.Unlock()
		return
	}
	s.closing = true
	s.gmu.Unlock()
	s.mu.Lock()
	var all []*Session
	for _, r := range s.rooms {
		for _, sess := range r.sessions {
			all = append(all, sess)
		}
		for rec := range r.recs {
			rec.finishLocked(fmt.Errorf("recording: %w: %w", ErrShutdown, ErrUnavailable))
		}
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.end(ErrShutdown)
	}
	close(s.allocStop)
	s.wg.Wait()
	s.closeListeners()
}

func (s *SFU) closeListeners() {
	for _, c := range s.closers {
		if err := c.Close(); err != nil {
			s.log.Warn("sfu listener close", "err", err)
		}
	}
}

type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}
