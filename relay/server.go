package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/udppoll"
)

// closeTimeout bounds how long Close waits for pion/turn's goroutines.
const closeTimeout = 10 * time.Second

// Server is a running TURN relay. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	policy  *PeerPolicy
	now     func() time.Time
	log     *slog.Logger
	creds   atomic.Pointer[credentials]
	metrics *metrics
	ledger  *ledger
	logs    logLimiter
	rate    *allocationRate
	streams *streamCount
	// draining refuses new allocations while existing ones go on.
	draining atomic.Bool

	turn    *turn.Server
	udp     *gatedPacketConn
	tcp     *gatedListener
	tls     *gatedListener
	sockets []*relaySockets
	poll    *udppoll.Set[datagramSink] // reads the UDP sockets; nil where unsupported
	// udpSockets are the relay sockets of clients on the UDP listener,
	// the ones the channel fast path serves.
	udpSockets *relaySockets

	// loops counts what pion/turn runs on our sockets: the UDP read loop,
	// each accept loop and each accepted connection's loop.
	loops sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the listeners and starts relaying. The relay
// runs until Close.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	creds, err := newCredentials(cfg.Realm, cfg.Secrets, cfg.StaticUsers)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, now: cfg.Now, log: cfg.Log, metrics: newMetrics()}
	s.policy = &s.cfg.Policy
	s.creds.Store(creds)
	s.ledger = newLedger(cfg.UserQuota, cfg.TotalQuota, s.quotaRefused)
	s.rate = newAllocationRate(cfg.AllocationRate, cfg.AllocationBurst)
	s.streams = newStreamCount(cfg.StreamsPerAddress)
	if err := s.metrics.register(cfg.Metrics); err != nil {
		return nil, err
	}
	if !cfg.socketReads {
		poll, err := newPollSet()
		switch {
		case err == nil:
			s.poll = poll
		case !errors.Is(err, udppoll.ErrUnsupported):
			s.metrics.unregister()
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	if err := s.listen(); err != nil {
		s.closePoll()
		s.metrics.unregister()
		return nil, err
	}
	// pion/turn runs one loop on the UDP socket and one on each listener.
	s.udpSockets = s.newSockets()
	pcs := []turn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: s.udpSockets, PermissionHandler: s.permit}}
	lcs := []turn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: s.newSockets(), PermissionHandler: s.permit}}
	if s.tls != nil {
		lcs = append(lcs, turn.ListenerConfig{Listener: s.tls, RelayAddressGenerator: s.newSockets(), PermissionHandler: s.permit})
	}
	s.loops.Add(len(pcs) + len(lcs))
	s.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:             cfg.Realm,
		AuthHandler:       s.authenticate,
		QuotaHandler:      s.reserve,
		PacketConnConfigs: pcs,
		ListenerConfigs:   lcs,
		LoggerFactory:     quietLoggers{},
		InboundMTU:        inboundMTU,
		EventHandler: turn.EventHandler{
			OnAuth: func(_, _ net.Addr, _, _, _, _ string, ok bool) {
				if !ok {
					s.authFailed(reasonIntegrity)
				}
			},
			OnAllocationCreated: func(src, dst net.Addr, _, username, _ string, _ net.Addr, _ int) {
				s.ledger.created(src, username)
				s.metrics.allocations.Inc()
				s.streamAllocated(src, dst, true)
			},
			OnAllocationDeleted: func(src, dst net.Addr, _, username, _ string) {
				s.ledger.deleted(username)
				s.metrics.allocations.Dec()
				s.streamAllocated(src, dst, false)
			},
			OnAllocationError: func(src, _ net.Addr, _, _ string) { s.ledger.failed(src) },
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.permissionChanged(relayAddr, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.permissionChanged(relayAddr, peer, false)
			},
			OnChannelCreated: func(src, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
				s.channelChanged(src, relayAddr, peer, number, true)
			},
			OnChannelDeleted: func(src, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
				s.channelChanged(src, relayAddr, peer, number, false)
			},
		},
	})
	if err != nil {
		// pion/turn fails in validation, before it starts a loop.
		s.closeSockets()
		s.closePoll()
		s.metrics.unregister()
		return nil, fmt.Errorf("relay: start pion/turn: %w", err)
	}
	tlsAddr := ""
	if s.tls != nil {
		tlsAddr = s.tls.Addr().String()
	}
	s.log.Info("relay listening", "udp_tcp", s.Addr().String(), "tls", tlsAddr, "relay_ip", cfg.RelayBindIP.String(),
		"public_ip", cfg.PublicIP.String(), "ports", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax),
		"secrets", len(cfg.Secrets), "static_users", len(cfg.StaticUsers),
		"allocation_rate", cfg.AllocationRate, "allocation_burst", cfg.AllocationBurst, "streams_per_address", cfg.StreamsPerAddress)
	return s, nil
}

// listen opens the UDP and TCP listeners on one port, and the TLS one.
func (s *Server) listen() error {
	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("relay listen address %q: %w", s.cfg.Listen, err)
	}
	// With port 0 the TCP listener takes the port UDP got, which may be
	// taken for TCP; a few tries find a port free for both.
	tries := 1
	if port == "0" {
		tries = 8
	}
	var udp net.PacketConn
	var tcp net.Listener
	for range tries {
		if udp, err = s.listenUDP(); err != nil {
			return err
		}
		got := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		if tcp, err = net.Listen("tcp", net.JoinHostPort(host, got)); err == nil {
			break
		}
		_ = udp.Close()
	}
	if err != nil {
		return fmt.Errorf("relay TCP listener %s: %w", s.cfg.Listen, err)
	}
	s.udp = &gatedPacketConn{PacketConn: udp, in: inspector{s: s}, stopped: s.loops.Done}
	switch u := udp.(type) {
	case *polledListener:
		s.udp.channels = u.channels // the loop forwards ChannelData itself
	case udpSocket:
		s.udp.reader, s.udp.channels = u, newChannels(u)
	}
	s.tcp = newGatedListener(tcp, s, s.loops.Done)
	if s.cfg.TLSListener != nil {
		s.tls = newGatedListener(s.cfg.TLSListener, s, s.loops.Done)
	}
	if s.cfg.TLSListen != "" {
		l, err := tls.Listen("tcp", s.cfg.TLSListen, s.cfg.TLS)
		if err != nil {
			_ = udp.Close()
			_ = tcp.Close()
			return fmt.Errorf("relay TLS listener %s: %w", s.cfg.TLSListen, err)
		}
		s.tls = newGatedListener(l, s, s.loops.Done)
	}
	return nil
}

// listenUDP opens the TURN port's UDP socket: in the Set where there is
// one, otherwise as a socket of Go's poller.
func (s *Server) listenUDP() (net.PacketConn, error) {
	if s.poll != nil {
		return s.listenPolled(s.cfg.Listen)
	}
	ua, err := net.ResolveUDPAddr("udp", s.cfg.Listen)
	var udp *net.UDPConn
	if err == nil {
		udp, err = net.ListenUDP("udp", ua)
	}
	if err != nil {
		return nil, fmt.Errorf("relay UDP listener %s: %w", s.cfg.Listen, err)
	}
	_ = udp.SetReadBuffer(listenerBuffer)
	_ = udp.SetWriteBuffer(listenerBuffer)
	return udp, nil
}

// closePoll stops the loops reading the relay sockets and closes any
// socket pion has not.
func (s *Server) closePoll() {
	if s.poll != nil {
		_ = s.poll.Close()
	}
}

func (s *Server) closeSockets() {
	_ = s.udp.PacketConn.Close()
	_ = s.tcp.Listener.Close()
	if s.tls != nil {
		_ = s.tls.Listener.Close()
	}
}

func (s *Server) newSockets() *relaySockets {
	r := &relaySockets{
		inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(s.cfg.PublicIP.AsSlice()), Address: s.cfg.RelayBindIP.String(),
			MinPort: s.cfg.PortMin, MaxPort: s.cfg.PortMax, MaxRetries: 32,
		},
		poll:   s.poll,
		policy: s.policy, metrics: s.metrics, maxBPS: s.cfg.MaxBPS, now: s.now,
		refused: func(class string) { s.peerRefused(class, false) },
		byAddr:  map[net.Addr]*relayConn{},
	}
	s.sockets = append(s.sockets, r)
	return r
}

// Addr returns the address of the UDP and TCP listeners.
func (s *Server) Addr() net.Addr { return s.udp.LocalAddr() }

// TLSAddr returns the address of the TLS listener, or nil without one.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

// Allocations returns the number of allocations open now.
func (s *Server) Allocations() int { return s.ledger.allocations() }

// SetCredentials replaces the accepted secrets and static users without a
// restart, for a rotation or a reloaded users file. Allocations keep
// running; each one's next request (a refresh, a permission) must carry a
// credential still accepted, so one signed by a dropped secret ends within
// minutes.
func (s *Server) SetCredentials(secrets [][]byte, staticUsers map[string]string) error {
	c, err := newCredentials(s.cfg.Realm, secrets, staticUsers)
	if err != nil {
		return err
	}
	s.creds.Store(c)
	s.log.Info("relay credentials replaced", "secrets", len(secrets), "static_users", len(staticUsers))
	return nil
}

// Close stops the relay: it closes the listeners, every client connection
// and every allocation, and returns once pion/turn's goroutines for them
// have ended (or after ten seconds, with an error). It unregisters the
// metrics. Calling Close again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	var errs []error
	if err := s.turn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("relay: close listeners: %w", err))
	}
	deadline := time.NewTimer(closeTimeout)
	defer deadline.Stop()
	loops := make(chan struct{})
	go func() { s.loops.Wait(); close(loops) }()
	select {
	case <-loops:
		// Every read loop has returned, so pion has closed its allocation
		// managers; the allocations' own goroutines end as their sockets
		// close. Timers pion armed for EVEN-PORT reservations may still fire
		// and touch only pion's own table.
		select {
		case <-s.ledger.drain():
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("relay: close: %d allocations still open after %s", s.ledger.allocations(), closeTimeout))
		}
	case <-deadline.C:
		errs = append(errs, fmt.Errorf("relay: close: connections still open after %s", closeTimeout))
	}
	s.closePoll()
	s.metrics.unregister()
	s.log.Info("relay stopped")
	return errors.Join(errs...)
}

// reserve is pion/turn's QuotaHandler, asked for each authenticated
// Allocate of a new allocation: the client address's rate, then the
// username's and the relay's quotas. While draining it refuses what the
// gate let through before the drain began.
func (s *Server) reserve(username, realm string, src net.Addr) bool {
	if s.draining.Load() {
		s.drainRefused()
		return false
	}
	if !s.rate.allow(src, s.now()) {
		s.quotaRefused("address_rate")
		return false
	}
	return s.ledger.reserve(username, realm, src)
}

// streamAllocated passes pion's allocation events to the TCP or TLS
// connection they concern, which then drops or regains its deadline.
func (s *Server) streamAllocated(src, dst net.Addr, allocated bool) {
	if _, ok := src.(*net.TCPAddr); !ok {
		return
	}
	key := streamKey(src, dst)
	if !s.tcp.setAllocated(key, allocated) && s.tls != nil {
		s.tls.setAllocated(key, allocated)
	}
}

// authenticate is pion/turn's AuthHandler: the long-term key of username,
// or a refusal of a malformed, expired or unknown one.
func (s *Server) authenticate(username, realm string, _ net.Addr) ([]byte, bool) {
	c := s.creds.Load()
	if reason := c.check(username, realm, s.now()); reason != "" {
		s.authFailed(reason)
		return nil, false
	}
	return c.key(username, realm), true
}

// permit is pion/turn's PermissionHandler, behind the gate: it refuses
// what the gate let through only if the gate could not read the request.
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	ip, ok := netipFromIP(peer)
	if !ok {
		s.peerRefused(ClassInvalid, true)
		return false
	}
	allowed, class := s.policy.Check(ip)
	if !allowed {
		s.peerRefused(class, true)
	}
	return allowed
}

// channelChanged keeps the channel fast path in step with pion. Only a
// client on the UDP listener has a *net.UDPAddr; TCP and TLS clients stay
// on pion's path.
func (s *Server) channelChanged(src, relayAddr, peer net.Addr, number uint16, bound bool) {
	client, ok := src.(*net.UDPAddr)
	to, ok2 := peer.(*net.UDPAddr)
	if !ok || !ok2 || s.udp.channels == nil {
		return
	}
	s.udpSockets.channel(s.udp.channels, relayAddr, client.AddrPort(), to.AddrPort(), number, bound)
}

func (s *Server) permissionChanged(relayAddr net.Addr, peer net.IP, granted bool) {
	for _, r := range s.sockets {
		r.permission(relayAddr, peer, granted)
	}
}

func (s *Server) authFailed(reason string) {
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.logs.log(s.log, "relay credential refused", "reason", reason)
}

func (s *Server) peerRefused(class string, logIt bool) {
	s.metrics.peerRefusals.WithLabelValues(class).Inc()
	if logIt {
		s.logs.log(s.log, "relay peer refused", "class", class)
	}
}

func (s *Server) drainRefused() {
	s.metrics.drainRefusals.Inc()
	s.logs.log(s.log, "relay allocation refused", "reason", "draining")
}

// streamClosed counts a TCP or TLS connection refused or ended by a
// limit. Only refusals by the per-address limit are logged: connections
// that never allocate are what scanners and abandoned tabs leave.
func (s *Server) streamClosed(reason string) {
	s.metrics.streamCloses.WithLabelValues(reason).Inc()
	if reason == closeAddressLimit {
		s.logs.log(s.log, "relay connection refused", "reason", reason)
	}
}

func (s *Server) quotaRefused(quota string) {
	s.metrics.quotaRefusals.WithLabelValues(quota).Inc()
	s.logs.log(s.log, "relay allocation refused by quota", "quota", quota)
}

// quietLoggers silences pion/turn, whose messages carry client and peer
// addresses; the relay logs what an operator needs through slog instead.
type quietLoggers struct{}

func (quietLoggers) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}
