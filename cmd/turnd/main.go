// Command turnd is the TURN relay an institution runs inside its own
// firewall so that patients on restrictive networks can still reach a
// consult. It accepts the time-limited credentials the signal server hands
// out (the TURN REST format, compatible with coturn's static-auth-secret).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openconsult/openconsult/internal/cli"
	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/serve"
	"github.com/openconsult/openconsult/internal/tlsconf"
	"github.com/openconsult/openconsult/internal/tlsmux"
	"github.com/openconsult/openconsult/relay"
)

func main() { cli.Main("turnd", run) }

type settings struct {
	set             *config.Set
	listen          addrList
	tlsListen       config.Addr
	tlsCert         string
	tlsKey          string
	httpsBackend    string
	backendProxy    bool
	realm           string
	authSecrets     config.StringList
	usersFile       string
	publicIP        string
	relayIP         string
	publicIP6       string
	relayIP6        string
	relayPorts      string
	allowPeers      config.PrefixList
	denyPeers       config.PrefixList
	userQuota       int
	totalQuota      int
	maxBPS          int64
	maxTotalBPS     int64
	allocationRate  float64
	allocationBurst int
	connsPerAddress int
	metrics         config.Addr
	check           bool
	cpuProfile      string
	shutdownTimeout time.Duration
	logLevel        config.Enum
	logFormat       config.Enum

	portMin, portMax uint16
	public, bind     netip.Addr
	public6, bind6   netip.Addr
}

func newSettings(stderr io.Writer) *settings {
	s := &settings{
		listen:    addrList{Values: []string{":3478"}, defaulted: true},
		tlsListen: config.Addr{Value: ":5349"},
		metrics:   config.Addr{Value: "127.0.0.1:9092"},
		logLevel:  config.Enum{Value: "info", Allowed: obs.LogLevels},
		logFormat: config.Enum{Value: "json", Allowed: obs.LogFormats},
	}
	s.set = config.New("turnd", "TURND", stderr)
	fs := s.set.Flags()
	fs.Var(&s.listen, "listen", "UDP and TCP `address` of the relay; repeat (or separate with commas) for several, such as an IPv4 and an IPv6 address")
	fs.Var(&s.tlsListen, "tls-listen", "TURN over TLS `address` (443 gets through most hospital and hotel firewalls); off to disable")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM certificate chain `file` for -tls-listen (re-read when it changes)")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key `file` of -tls-cert")
	fs.StringVar(&s.httpsBackend, "https-backend", "", "`host:port` of an HTTPS server (such as signal on a private address) that shares -tls-listen, for instance port 443: connections offering HTTP's ALPN, or naming another server than -tls-cert's, are passed to it still encrypted, and it answers with its own certificate; TURN clients (no ALPN and -tls-cert's name or none, or ALPN stun.turn) stay here (default off)")
	fs.BoolVar(&s.backendProxy, "https-backend-proxy-protocol", false, "start each connection passed to -https-backend with a PROXY protocol version 2 header naming the client's address, so that the site's rate limits and audit log see each client rather than turnd (signal -proxy-protocol-from turnd's address); without it the site sees every such client at turnd's address")
	fs.StringVar(&s.realm, "realm", "openconsult", "TURN realm")
	fs.Var(&s.authSecrets, "auth-secret", "shared secret of REST credentials (signal -turn-secret, coturn static-auth-secret); repeat to rotate: the first is current, the others stay accepted; prefer TURND_AUTH_SECRET")
	fs.StringVar(&s.usersFile, "users-file", "", "`file` of static long-term users, one username:password per line (# comments)")
	fs.StringVar(&s.publicIP, "public-ip", "", "relayed `address` told to clients when the relay sits behind 1:1 NAT (default: -relay-ip)")
	fs.StringVar(&s.relayIP, "relay-ip", "", "local `address` relay sockets bind to (default: the address of -listen, or the host's outbound address)")
	fs.StringVar(&s.relayIP6, "relay-ip6", "", "local IPv6 `address` relay sockets of IPv6 allocations bind to (RFC 6156); empty: IPv4 relaying only, and clients asking for IPv6 get 440")
	fs.StringVar(&s.publicIP6, "public-ip6", "", "IPv6 relayed `address` told to clients (default: -relay-ip6)")
	fs.StringVar(&s.relayPorts, "relay-ports", "49152-65535", "`MIN-MAX` port range of relay sockets; open it in the firewall")
	fs.Var(&s.allowPeers, "allow-peer", "`CIDR` of internal destinations the relay may reach, such as the SFU's subnet; repeatable")
	fs.Var(&s.denyPeers, "deny-peer", "`CIDR` the relay must never reach, on top of the built-in internal ranges; repeatable")
	fs.IntVar(&s.userQuota, "user-quota", 10, "allocations per username (a participant needs 1 to 3)")
	fs.IntVar(&s.totalQuota, "total-quota", 2000, "allocations in all")
	fs.Int64Var(&s.maxBPS, "max-bps", 0, "bandwidth cap per allocation and direction in bits per second (datagrams over it are dropped; a TCP allocation's connections wait); 0 for none")
	fs.Int64Var(&s.maxTotalBPS, "max-total-bps", 0, "bandwidth cap of all allocations together, per direction, in bits per second; 0 for none")
	def := relay.DefaultConfig()
	fs.Float64Var(&s.allocationRate, "allocation-rate", def.AllocationRate, "new allocations a second one client address may make after -allocation-burst (an IPv6 client counts by its /64); 0 for no limit")
	fs.IntVar(&s.allocationBurst, "allocation-burst", def.AllocationBurst, "allocations one client address may make at once before -allocation-rate applies")
	fs.IntVar(&s.connsPerAddress, "connections-per-address", def.StreamsPerAddress, "TCP and TLS connections one client address may hold at once, and as many passed to -https-backend; 0 for no limit")
	fs.Var(&s.metrics, "metrics", "plain HTTP `address` of /metrics, /healthz and /readyz; keep it private; off to disable")
	fs.BoolVar(&s.check, "check", false, "validate the configuration, print a summary and exit")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the relay to this `file` until shutdown (for performance work)")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long open allocations may go on relaying while new ones are refused")
	fs.Var(&s.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&s.logFormat, "log-format", "log `format`: json or text")
	return s
}

func (s *settings) load(args []string, getenv func(string) string) error {
	if err := s.set.Load(args, getenv); err != nil {
		return err
	}
	var errs []error
	bad := func(name, format string, args ...any) { errs = append(errs, s.set.Invalid(name, format, args...)) }
	if len(s.listen.Values) == 0 {
		bad("listen", "the relay needs an address")
	}
	if len(s.authSecrets.Values) == 0 && s.usersFile == "" {
		bad("auth-secret", "give a shared secret (or -users-file)")
	}
	for _, sec := range s.authSecrets.Values {
		if len(sec) < 16 {
			bad("auth-secret", "a secret of %d characters is too short: use at least 16", len(sec))
		}
	}
	if s.tlsListen.Value != "" && (s.tlsCert == "" || s.tlsKey == "") {
		bad("tls-cert", "-tls-listen needs -tls-cert and -tls-key (or -tls-listen off)")
	}
	if s.backendProxy && s.httpsBackend == "" {
		bad("https-backend-proxy-protocol", "needs -https-backend")
	}
	if s.httpsBackend != "" {
		if s.tlsListen.Value == "" {
			bad("https-backend", "shares the TLS port: set -tls-listen")
		}
		if host, port, err := net.SplitHostPort(s.httpsBackend); err != nil || host == "" || port == "" || port == "0" {
			bad("https-backend", "%q is not host:port", s.httpsBackend)
		} else if s.tlsListen.Value != "" && sameAddress(s.httpsBackend, s.tlsListen.Value) {
			bad("https-backend", "%s is -tls-listen itself: connections would loop", s.httpsBackend)
		}
	}
	lo, hi, ok := strings.Cut(s.relayPorts, "-")
	a, errA := strconv.ParseUint(lo, 10, 16)
	b, errB := strconv.ParseUint(hi, 10, 16)
	if !ok || errA != nil || errB != nil || a < 1024 || a > b {
		bad("relay-ports", "%q is not MIN-MAX with 1024 <= MIN <= MAX <= 65535", s.relayPorts)
	}
	s.portMin, s.portMax = uint16(a), uint16(b)
	if s.userQuota < 1 || s.totalQuota < 1 {
		bad("user-quota", "quotas must be at least 1")
	}
	if s.maxBPS < 0 {
		bad("max-bps", "must not be negative")
	}
	if s.maxTotalBPS < 0 {
		bad("max-total-bps", "must not be negative")
	}
	if s.allocationRate < 0 || s.allocationRate != s.allocationRate {
		bad("allocation-rate", "must be 0 (no limit) or more")
	}
	if s.allocationRate > 0 && s.allocationBurst < 1 {
		bad("allocation-burst", "must be at least 1")
	}
	if s.connsPerAddress < 0 {
		bad("connections-per-address", "must be 0 (no limit) or more")
	}
	if s.shutdownTimeout < 0 {
		bad("shutdown-timeout", "must not be negative")
	}
	var err error
	if s.bind, err = relayIP(s.relayIP, s.listen.ipv4()); err != nil {
		bad("relay-ip", "%v", err)
	}
	s.public = s.bind
	if s.publicIP != "" {
		if s.public, err = netip.ParseAddr(s.publicIP); err != nil {
			bad("public-ip", "%q is not an IP address", s.publicIP)
		}
	}
	if s.relayIP6 != "" {
		if s.bind6, err = netip.ParseAddr(s.relayIP6); err != nil || !s.bind6.Is6() || s.bind6.Is4In6() {
			bad("relay-ip6", "%q is not an IPv6 address", s.relayIP6)
		}
	}
	if s.publicIP6 != "" {
		if s.relayIP6 == "" {
			bad("public-ip6", "give -relay-ip6 too")
		}
		if s.public6, err = netip.ParseAddr(s.publicIP6); err != nil || !s.public6.Is6() || s.public6.Is4In6() {
			bad("public-ip6", "%q is not an IPv6 address", s.publicIP6)
		}
	}
	return errors.Join(errs...)
}

// relayIP picks the relay bind address: the flag, the listen host, or the
// address the host uses to reach the internet.
func relayIP(flag, listen string) (netip.Addr, error) {
	if flag != "" {
		return netip.ParseAddr(flag)
	}
	host, _, _ := net.SplitHostPort(listen)
	if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
		return a, nil
	}
	// A UDP "connection" sends nothing; it only asks the routing table.
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot find the host's address; set -relay-ip: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings(stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	log, err := obs.NewLogger(stderr, s.logLevel.Value, s.logFormat.Value)
	if err != nil {
		return err
	}
	users, err := s.staticUsers()
	if err != nil {
		return err
	}
	cfg := relay.Config{Realm: s.realm, Listen: s.listen.Values[0], MoreListen: s.listen.Values[1:],
		PublicIP: s.public, RelayBindIP: s.bind, PublicIP6: s.public6, RelayBindIP6: s.bind6,
		PortMin: s.portMin, PortMax: s.portMax, StaticUsers: users, MaxTotalBPS: s.maxTotalBPS,
		Policy:    relay.PeerPolicy{Allow: s.allowPeers.Values, Deny: s.denyPeers.Values},
		UserQuota: s.userQuota, TotalQuota: s.totalQuota, MaxBPS: s.maxBPS, Log: log,
		AllocationRate: s.allocationRate, AllocationBurst: s.allocationBurst, StreamsPerAddress: s.connsPerAddress}
	cfg.Secrets = s.secrets()
	var src *tlsconf.FileSource
	if s.tlsListen.Value != "" {
		src, err = tlsconf.NewFileSource(s.tlsCert, s.tlsKey)
		if err != nil {
			return s.set.Invalid("tls-cert", "%v", err)
		}
		cfg.TLSListen, cfg.TLS = s.tlsListen.Value, tlsconf.Server(src.GetCertificate)
		cfg.TLS.NextProtos = nil // TURN, not HTTP
	}
	var shared *tlsmux.Passthrough
	if s.httpsBackend != "" && !s.check {
		if shared, err = sharePort(cfg.TLSListen, cfg.TLS, src.GetCertificate, backend{addr: s.httpsBackend, proxyHeader: s.backendProxy}, s.connsPerAddress, log); err != nil {
			return err
		}
		defer shared.Close()
		cfg.TLSListen, cfg.TLSListener, cfg.TLS = "", shared.TURN(), nil
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("turnd: %w", err)
	}
	if s.check {
		tlsDesc := orOff(s.tlsListen.Value)
		if s.httpsBackend != "" {
			tlsDesc += " shared with the HTTPS server at " + s.httpsBackend
			if s.backendProxy {
				tlsDesc += " (PROXY protocol v2)"
			}
		}
		fmt.Fprintf(stdout, "configuration valid: listen %s, tls %s, relay %s (public %s), IPv6 relay %s, ports %d-%d, %d secrets, %d static users, allow %v, deny %v\n",
			s.listen.String(), tlsDesc, s.bind, s.public, ipv6Relay(s.bind6, s.public6), s.portMin, s.portMax, len(cfg.Secrets), len(users), s.allowPeers.String(), s.denyPeers.String())
		return nil
	}
	if s.cpuProfile != "" {
		f, err := os.Create(s.cpuProfile)
		if err != nil {
			return s.set.Invalid("cpuprofile", "%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return s.set.Invalid("cpuprofile", "%v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	reg := obs.NewRegistry()
	cfg.Metrics = reg
	// Installed before the relay starts, so that a SIGHUP from the moment
	// it is up reloads rather than kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var ln net.Listener
	if s.metrics.Value != "" {
		if ln, err = serve.Listen("metrics", s.metrics.Value); err != nil {
			return err
		}
	}
	srv, err := relay.New(cfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	defer srv.Close()
	stopReload := reloadOnHangup(ctx, log, hup, srv, args, getenv)
	defer stopReload()

	// The metrics server outlives ctx: /readyz says "draining" while the
	// relay drains, so that a load balancer sends new clients elsewhere.
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	served := make(chan error, 1)
	if ln != nil {
		health := obs.NewHealth(log, time.Second)
		health.AddCheck("relay", func(context.Context) error {
			if srv.Draining() {
				return obs.ErrDraining
			}
			return nil
		})
		go func() {
			served <- serve.Run(adminCtx, log, s.shutdownTimeout, serve.Server{Name: "metrics", Listener: ln, Handler: obs.AdminHandler(reg, health)})
		}()
	} else {
		close(served)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		if err != nil {
			return err // the metrics server failed; the deferred Close stops the relay
		}
		<-ctx.Done()
	}
	drain(log, srv, s.shutdownTimeout)
	stopAdmin()
	err = <-served
	log.Info("stopped")
	return err
}

// drain stops the relay gracefully: new allocations are refused while the
// open ones go on relaying until they end or timeout passes.
func drain(log *slog.Logger, srv *relay.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log.Info("draining", "allocations", srv.Allocations(), "timeout", timeout.String())
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown timeout: open allocations closed", "err", err)
	}
}

// staticUsers reads -users-file, or returns no users without one.
func (s *settings) staticUsers() (map[string]string, error) {
	users := map[string]string{}
	if s.usersFile == "" {
		return users, nil
	}
	f, err := os.Open(s.usersFile)
	if err != nil {
		return nil, s.set.Invalid("users-file", "%v", err)
	}
	defer f.Close()
	users, err = relay.ParseUsersFile(f)
	if err != nil {
		return nil, s.set.Invalid("users-file", "%v", err)
	}
	return users, nil
}

func (s *settings) secrets() [][]byte {
	out := make([][]byte, 0, len(s.authSecrets.Values))
	for _, sec := range s.authSecrets.Values {
		out = append(out, []byte(sec))
	}
	return out
}

// credentialSetter is the part of the relay a reload touches.
type credentialSetter interface {
	SetCredentials(secrets [][]byte, staticUsers map[string]string) error
}

// reloadCredentials reads the configuration again (flags, environment and
// config file) and hands the relay its secrets and static users, so an
// operator rotates the shared secret or edits the users file without
// dropping the allocations of running calls. Other settings need a restart.
func reloadCredentials(relaySrv credentialSetter, args []string, getenv func(string) string) error {
	s := newSettings(io.Discard)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	users, err := s.staticUsers()
	if err != nil {
		return err
	}
	return relaySrv.SetCredentials(s.secrets(), users)
}

// reloadOnHangup calls reloadCredentials on every signal from hup until ctx
// ends or the returned stop function is called; a failed reload keeps the
// running credentials and is logged.
func reloadOnHangup(ctx context.Context, log *slog.Logger, hup <-chan os.Signal, relaySrv credentialSetter, args []string, getenv func(string) string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := reloadCredentials(relaySrv, args, getenv); err != nil {
					log.Error("credential reload refused; the previous credentials stay in force", "err", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func ipv6Relay(bind, public netip.Addr) string {
	switch {
	case !bind.IsValid():
		return "off"
	case public.IsValid() && public != bind:
		return fmt.Sprintf("%s (public %s)", bind, public)
	}
	return bind.String()
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
