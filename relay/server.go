package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is a relay's configuration.
type Config struct {
	Realm       string
	Listen      string      // host:port for UDP and TCP
	TLSListen   string      // host:port for TURN over TLS; empty for none
	TLS         *tls.Config // certificate for TLSListen
	PublicIP    netip.Addr  // relayed address told to clients (1:1 NAT); zero: RelayBindIP
	RelayBindIP netip.Addr  // where relay sockets bind
	PortMin     uint16
	PortMax     uint16
	Secrets     [][]byte          // REST secrets; the first is current
	StaticUsers map[string]string // long-term users, username -> password
	Policy      PeerPolicy
	UserQuota   int   // allocations per username
	TotalQuota  int   // allocations in all
	MaxBPS      int64 // per allocation, each direction; 0 = no cap
	Log         *slog.Logger
	Metrics     prometheus.Registerer
	Now         func() time.Time
}

// Server is a running relay.
type Server struct {
	cfg     Config
	turn    *turn.Server
	udp     net.PacketConn
	tcp     net.Listener
	tls     net.Listener
	metrics *metrics

	mu      sync.Mutex
	perUser map[string]int
	total   int
	closed  bool
}

// New starts a relay.
func New(cfg Config) (*Server, error) {
	if len(cfg.Secrets) == 0 && len(cfg.StaticUsers) == 0 {
		return nil, errors.New("relay: no credentials: give an auth secret or static users")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if !cfg.RelayBindIP.IsValid() {
		return nil, errors.New("relay: no relay bind address")
	}
	if !cfg.PublicIP.IsValid() {
		cfg.PublicIP = cfg.RelayBindIP
	}
	s := &Server{cfg: cfg, perUser: map[string]int{}, metrics: newMetrics(cfg.Metrics)}
	var err error
	if s.udp, err = net.ListenPacket("udp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("relay UDP listener %s: %w", cfg.Listen, err)
	}
	// With port 0 the TCP listener takes the port UDP got, so one address
	// serves both as the protocol expects.
	host, _, _ := net.SplitHostPort(cfg.Listen)
	tcpAddr := net.JoinHostPort(host, fmt.Sprint(s.udp.LocalAddr().(*net.UDPAddr).Port))
	if s.tcp, err = net.Listen("tcp", tcpAddr); err != nil {
		s.udp.Close()
		return nil, fmt.Errorf("relay TCP listener %s: %w", cfg.Listen, err)
	}
	gen := func() turn.RelayAddressGenerator {
		return &meteredGenerator{inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(cfg.PublicIP.AsSlice()), Address: cfg.RelayBindIP.String(),
			MinPort: cfg.PortMin, MaxPort: cfg.PortMax, MaxRetries: 20,
		}, metrics: s.metrics, maxBPS: cfg.MaxBPS}
	}
	permit := s.permit
	listeners := []turn.ListenerConfig{{Listener: s.tcp, RelayAddressGenerator: gen(), PermissionHandler: permit}}
	if cfg.TLSListen != "" {
		if cfg.TLS == nil {
			s.closeListeners()
			return nil, errors.New("relay: TLS listener without a certificate")
		}
		if s.tls, err = tls.Listen("tcp", cfg.TLSListen, cfg.TLS); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("relay TLS listener %s: %w", cfg.TLSListen, err)
		}
		listeners = append(listeners, turn.ListenerConfig{Listener: s.tls, RelayAddressGenerator: gen(), PermissionHandler: permit})
	}
	s.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:             cfg.Realm,
		AuthHandler:       s.authenticate,
		QuotaHandler:      s.quota,
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: &permissionGate{PacketConn: s.udp, s: s}, RelayAddressGenerator: gen(), PermissionHandler: permit}},
		ListenerConfigs:   listeners,
		LoggerFactory:     quietLogger{},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, _, _ string, _ net.Addr, _ int) { s.metrics.allocations.Inc() },
			OnAllocationDeleted: func(_, _ net.Addr, _, username, _ string) { s.released(username) },
		},
	})
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("relay: %w", err)
	}
	cfg.Log.Info("relay listening", "udp_tcp", s.udp.LocalAddr().String(), "tls", cfg.TLSListen, "public_ip", cfg.PublicIP.String(),
		"ports", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax))
	return s, nil
}

// Addr is the bound UDP/TCP address.
func (s *Server) Addr() net.Addr { return s.udp.LocalAddr() }

// TLSAddr is the bound TLS address, or nil.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

// Close stops the relay and its allocations.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.turn.Close()
}

func (s *Server) closeListeners() {
	for _, c := range []interface{ Close() error }{s.udp, s.tcp, s.tls} {
		if c != nil {
			c.Close()
		}
	}
}

// authenticate returns the long-term key of username, refusing expired or
// malformed REST usernames.
func (s *Server) authenticate(username, realm string, _ net.Addr) ([]byte, bool) {
	if pw, ok := s.cfg.StaticUsers[username]; ok {
		return turn.GenerateAuthKey(username, realm, pw), true
	}
	if len(s.cfg.Secrets) == 0 {
		s.authFailed("unknown user")
		return nil, false
	}
	expiry, id, err := ParseRESTUsername(username)
	if err != nil {
		s.authFailed("malformed username")
		return nil, false
	}
	if !s.cfg.Now().Before(expiry) {
		s.authFailed("expired")
		return nil, false
	}
	secret := secretFor(s.cfg.Secrets, id)
	return turn.GenerateAuthKey(username, realm, restPassword(secret, username)), true
}

func (s *Server) authFailed(reason string) {
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.cfg.Log.Info("relay credential refused", "reason", reason)
}

// quota admits an allocation when the user and the relay have room; a
// refusal reaches the client as 486 Allocation Quota Reached.
func (s *Server) quota(username, _ string, _ net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.TotalQuota > 0 && s.total >= s.cfg.TotalQuota {
		s.metrics.quotaRefusals.WithLabelValues("total").Inc()
		return false
	}
	if s.cfg.UserQuota > 0 && s.perUser[username] >= s.cfg.UserQuota {
		s.metrics.quotaRefusals.WithLabelValues("user").Inc()
		return false
	}
	s.perUser[username]++
	s.total++
	return true
}

// released frees the quota an allocation held. The quota handler counts an
// allocation before pion creates it; a creation that then fails is freed
// when pion reports the deletion, or never counted if pion reports nothing,
// so counts never go negative.
func (s *Server) released(username string) {
	s.metrics.allocations.Dec()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perUser[username] > 0 {
		s.perUser[username]--
		s.total--
	}
	if s.perUser[username] == 0 {
		delete(s.perUser, username)
	}
}

// permit applies the peer policy to CreatePermission and ChannelBind; a
// refusal reaches the client as 403 Forbidden.
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		s.metrics.peerRefusals.WithLabelValues("invalid").Inc()
		return false
	}
	allowed, class := s.cfg.Policy.Check(ip)
	if !allowed {
		s.metrics.peerRefusals.WithLabelValues(class).Inc()
		s.cfg.Log.Info("relay peer refused", "class", class)
	}
	return allowed
}

// quietLogger drops pion's internal logging; the relay logs what an
// operator needs through slog, without client addresses.
type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nil)
}
