package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

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
	ports   []*turnPort // one per listen address, the first is Listen
	tls     *gatedListener
	sockets []*relaySockets
	total   *sharedBucket              // the server-wide cap; nil without one
	poll    *udppoll.Set[datagramSink] // reads the UDP sockets; nil where unsupported

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
	if cfg.MaxTotalBPS > 0 {
		s.total = newSharedBucket(cfg.MaxTotalBPS, s.now)
	}
	if err := s.listen(); err != nil {
		s.closePoll()
		s.metrics.unregister()
		return nil, err
	}
	// pion/turn runs one loop on each UDP socket and one on each listener.
	var pcs []turn.PacketConnConfig
	var lcs []turn.ListenerConfig
	for _, p := range s.ports {
		p.sockets = s.newSockets()
		pcs = append(pcs, turn.PacketConnConfig{PacketConn: p.udp, RelayAddressGenerator: p.sockets, PermissionHandler: s.permit})
		lcs = append(lcs, turn.ListenerConfig{Listener: p.tcp, RelayAddressGenerator: s.newSockets(), PermissionHandler: s.permit})
	}
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
		// Without IPv6 relaying a client on an IPv6 listener that names no
		// family gets an IPv4 relay, as RFC 6156 says; with it, one of the
		// client's own family, which is what a browser on IPv6 needs.
		StrictAddressFamily: !cfg.RelayBindIP6.IsValid(),
		AllocationLifetime:  defaultLifetime,
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
			OnChannelCreated: func(src, dst net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
				s.channelChanged(src, dst, relayAddr, peer, number, true)
			},
			OnChannelDeleted: func(src, dst net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
				s.channelChanged(src, dst, relayAddr, peer, number, false)
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
	addrs := make([]string, 0, len(s.ports))
	for _, a := range s.Addrs() {
		addrs = append(addrs, a.String())
	}
	s.log.Info("relay listening", "udp_tcp", strings.Join(addrs, " "), "tls", tlsAddr, "relay_ip", cfg.RelayBindIP.String(),
		"public_ip", cfg.PublicIP.String(), "relay_ip6", addrOrOff(cfg.RelayBindIP6), "public_ip6", addrOrOff(cfg.PublicIP6),
		"ports", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax), "max_bps", cfg.MaxBPS, "max_total_bps", cfg.MaxTotalBPS,
		"secrets", len(cfg.Secrets), "static_users", len(cfg.StaticUsers),
		"allocation_rate", cfg.AllocationRate, "allocation_burst", cfg.AllocationBurst, "streams_per_address", cfg.StreamsPerAddress)
	return s, nil
}

// turnPort is one listen address: its UDP socket and TCP listener on one
// port, and the relay sockets of its UDP clients, the ones its channel
// fast path serves.
type turnPort struct {
	udp     *gatedPacketConn
	tcp     *gatedListener
	sockets *relaySockets
}

// listen opens the UDP and TCP listeners of every listen address, and the
// TLS one.
func (s *Server) listen() error {
	for _, addr := range append([]string{s.cfg.Listen}, s.cfg.MoreListen...) {
		p, err := s.listenPort(addr)
		if err != nil {
			s.closeSockets()
			return err
		}
		s.ports = append(s.ports, p)
	}
	if s.cfg.TLSListener != nil {
		s.tls = newGatedListener(s.cfg.TLSListener, s, s.loops.Done)
	}
	if s.cfg.TLSListen != "" {
		l, err := tls.Listen("tcp", s.cfg.TLSListen, s.cfg.TLS)
		if err != nil {
			s.closeSockets()
			return fmt.Errorf("relay TLS listener %s: %w", s.cfg.TLSListen, err)
		}
		s.tls = newGatedListener(l, s, s.loops.Done)
	}
	return nil
}

// listenPort opens the UDP and TCP listeners of one address on one port.
func (s *Server) listenPort(address string) (*turnPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("relay listen address %q: %w", address, err)
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
		if udp, err = s.listenUDP(address); err != nil {
			return nil, err
		}
		got := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		if tcp, err = net.Listen("tcp", net.JoinHostPort(host, got)); err == nil {
			break
		}
		_ = udp.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("relay TCP listener %s: %w", address, err)
	}
	p := &turnPort{udp: &gatedPacketConn{PacketConn: udp, in: inspector{s: s}, stopped: s.loops.Done}}
	switch u := udp.(type) {
	case *polledListener:
		p.udp.channels = u.channels // the loop forwards ChannelData itself
	case udpSocket:
		p.udp.reader, p.udp.channels = u, newChannels(u)
	}
	p.tcp = newGatedListener(tcp, s, s.loops.Done)
	return p, nil
}

// listenUDP opens a TURN port's UDP socket: in the Set where there is
// one, otherwise as a socket of Go's poller.
func (s *Server) listenUDP(address string) (net.PacketConn, error) {
	if s.poll != nil {
		return s.listenPolled(address)
	}
	ua, err := net.ResolveUDPAddr("udp", address)
	var udp *net.UDPConn
	if err == nil {
		udp, err = net.ListenUDP("udp", ua)
	}
	if err != nil {
		return nil, fmt.Errorf("relay UDP listener %s: %w", address, err)
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
	for _, p := range s.ports {
		_ = p.udp.PacketConn.Close()
		_ = p.tcp.Listener.Close()
	}
	if s.tls != nil {
		_ = s.tls.Listener.Close()
	}
}

func (s *Server) newSockets() *relaySockets {
	r := &relaySockets{
		v4:  relayFamily{bind: s.cfg.RelayBindIP, public: s.cfg.PublicIP},
		v6:  relayFamily{bind: s.cfg.RelayBindIP6, public: s.cfg.PublicIP6},
		min: s.cfg.PortMin, max: s.cfg.PortMax,
		poll: s.poll, policy: s.policy, metrics: s.metrics, maxBPS: s.cfg.MaxBPS, total: s.total, now: s.now,
		dialTimeout: peerDialTimeout,
		refused:     func(class string) { s.peerRefused(class, false) },
		byAddr:      map[net.Addr]*relayConn{},
		streams:     map[netip.AddrPort]*streamCap{},
		listeners:   map[*peerListener]struct{}{},
		closeFails:  s.cfg.relayCloseFails,
	}
	s.sockets = append(s.sockets, r)
	return r
}

// peerDialTimeout bounds a TCP allocation's connection to a peer (RFC
// 6062, 5.2: at least 30 seconds).
const peerDialTimeout = 30 * time.Second

// Addrs returns the addresses of the UDP and TCP listeners, Listen's
// first.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.ports))
	for i, p := range s.ports {
		out[i] = p.udp.LocalAddr()
	}
	return out
}

// Addr returns the address of the UDP and TCP listeners.
func (s *Server) Addr() net.Addr { return s.ports[0].udp.LocalAddr() }

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
		// Every read loop has returned, so pion closes its allocation
		// managers; the allocations' own goroutines end as their sockets
		// close. A manager stops at the first allocation whose Close
		// fails, so the relay closes the sockets left open itself. Timers
		// pion armed for EVEN-PORT reservations may still fire and touch
		// only pion's own table.
		for _, r := range s.sockets {
			r.closeAll()
		}
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
	for _, p := range s.ports {
		if p.tcp.setAllocated(key, allocated) {
			return
		}
	}
	if s.tls != nil {
		s.tls.setAllocated(key, allocated)
	}
}

// authenticate is pion/turn's AuthHandler: the long-term key of username,
// or a refusal of a malformed, expired or unknown one.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	c := s.creds.Load()
	if reason := c.check(ra.Username, ra.Realm, s.now()); reason != "" {
		s.authFailed(reason)
		return "", nil, false
	}
	return ra.Username, c.key(ra.Username, ra.Realm), true
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
func (s *Server) channelChanged(src, dst, relayAddr, peer net.Addr, number uint16, bound bool) {
	client, ok := src.(*net.UDPAddr)
	to, ok2 := peer.(*net.UDPAddr)
	if !ok || !ok2 {
		return
	}
	for _, p := range s.ports {
		if p.udp.channels != nil && p.udp.LocalAddr().String() == dst.String() {
			p.sockets.channel(p.udp.channels, relayAddr, client.AddrPort(), to.AddrPort(), number, bound)
			return
		}
	}
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

// addrOrOff writes an optional address for the start-up log: "off" when
// it is not set (IPv6 relaying is optional).
func addrOrOff(a netip.Addr) string {
	if !a.IsValid() {
		return "off"
	}
	return a.String()
}
