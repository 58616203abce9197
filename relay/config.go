package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var errInvalidPrefix = errors.New("relay: invalid peer prefix")

// Config configures a relay. Start from [DefaultConfig]; the zero value
// lacks the credentials, the relay address and the quotas a relay needs.
type Config struct {
	// Realm is the TURN realm, part of the long-term key. Requests naming
	// another realm are refused.
	Realm string

	// Listen is the "host:port" of both the UDP and the TCP listener, such
	// as ":3478" or "[::]:3478" (IPv4 and IPv6 where the system allows
	// dual-stack sockets). With port 0 both get the same free port.
	Listen string
	// MoreListen are further "host:port" addresses with a UDP and a TCP
	// listener each, such as an IPv6 address beside an IPv4 one, or port
	// 443 beside 3478 for clients whose firewall lets only 443 out.
	MoreListen []string

	// TLSListen is the "host:port" of TURN over TLS; empty for none. TLS
	// holds its certificate. Its NextProtos must be empty or include
	// "stun.turn" (RFC 7443): Go refuses the handshake of a client whose
	// ALPN offer shares nothing with a non-empty list.
	TLSListen string
	TLS       *tls.Config
	// TLSListener, instead of TLSListen, is a listener of TURN-over-TLS
	// connections already past their handshake, such as the TURN side of
	// a port shared with HTTPS (internal/tlsmux). The relay serves it as
	// it serves TLSListen and closes it on Close.
	TLSListener net.Listener

	// RelayBindIP is the local IPv4 address relay sockets bind to. It may
	// be 0.0.0.0 when PublicIP is set.
	RelayBindIP netip.Addr
	// PublicIP is the relayed address told to clients when the relay sits
	// behind a one-to-one NAT; zero means RelayBindIP.
	PublicIP netip.Addr
	// RelayBindIP6 and PublicIP6 are the same for IPv6 relayed addresses
	// (RFC 6156). Without RelayBindIP6 the relay allocates IPv4 relayed
	// addresses only, and refuses a REQUESTED-ADDRESS-FAMILY of IPv6 with
	// 440 Address Family not Supported.
	RelayBindIP6 netip.Addr
	PublicIP6    netip.Addr
	// PortMin and PortMax bound the relay sockets' ports, both included.
	PortMin, PortMax uint16

	// Secrets are the shared secrets of TURN REST credentials (coturn's
	// static-auth-secret). Every one is accepted, so that a rotation can
	// add the new secret, move the signal servers to it, and drop the old
	// one once the last credential it signed has expired. The order does
	// not matter to the relay.
	Secrets [][]byte
	// StaticUsers are long-term users, username -> password, such as read
	// by [ParseUsersFile]. Secrets, StaticUsers or both must be given.
	StaticUsers map[string]string

	// Policy decides which peers allocations may reach; its zero value
	// refuses internal addresses and allows the public internet.
	Policy PeerPolicy

	// UserQuota is the most allocations one username may hold at once;
	// 0 means no per-user limit. A browser needs one to three per consult.
	UserQuota int
	// TotalQuota is the most allocations the relay holds at once. It must
	// be at least 1: every allocation costs a socket and a port.
	TotalQuota int

	// AllocationRate is how many new allocations one client address may
	// make a second, after a burst of AllocationBurst; more are refused
	// with 486 Allocation Quota Reached. An IPv6 client counts by its /64.
	// 0 means no limit.
	AllocationRate  float64
	AllocationBurst int
	// StreamsPerAddress is the most TCP and TLS connections one client
	// address (an IPv6 one by its /64) may hold at once; a connection over
	// it is closed as soon as it is accepted. 0 means no limit.
	StreamsPerAddress int

	// MaxBPS caps each allocation's relayed traffic, in bits per second and
	// in each direction, with a one-second burst; datagrams over the cap
	// are dropped, and a TCP allocation's connections with peers (RFC 6062)
	// wait until the cap has room, so that TCP slows the sender down
	// without losing data. 0 means no cap.
	MaxBPS int64
	// MaxTotalBPS caps the relayed traffic of all allocations together, in
	// bits per second and in each direction, with a one-second burst;
	// datagrams over it are dropped and TCP allocations' connections wait,
	// as for MaxBPS. 0 means no cap.
	MaxTotalBPS int64

	// Log receives what an operator needs: start, refusals (by reason or
	// class, at most one line a second per kind), stop. It never receives
	// a username, a password, a secret or a client address. Nil discards.
	Log *slog.Logger
	// Metrics registers the relay's collectors (names start with turn_);
	// Close unregisters them. Nil keeps them unregistered.
	Metrics prometheus.Registerer

	// Now is the clock of credential expiry and the bandwidth cap; nil
	// means time.Now.
	Now func() time.Time

	// firstFrameTimeout bounds the TLS handshake and first request of a
	// stream connection; zero means 15 seconds. Tests shorten it.
	firstFrameTimeout time.Duration
	// noAllocationTimeout closes a TCP or TLS connection that has held no
	// allocation for that long, from its start or from the end of its
	// allocation, whatever it sends; zero means 30 seconds. Tests shorten
	// it.
	noAllocationTimeout time.Duration
	// socketReads makes pion/turn read each relay socket itself even where
	// a udppoll.Set could, as on systems without one. Tests set it.
	socketReads bool
	// relayCloseFails makes every relay socket's Close report an error
	// after it closed the socket, as a close that fails would. Tests set
	// it.
	relayCloseFails bool
}

// DefaultConfig returns a configuration with the defaults of turnd: the
// standard TURN port on every address, the IANA dynamic port range for
// relay sockets, 10 allocations per username and 1000 in all, 20 new
// allocations a second per client address after a burst of 60, 64 TCP and
// TLS connections per client address, no bandwidth cap. Secrets (or StaticUsers) and RelayBindIP remain to be set.
func DefaultConfig() Config {
	return Config{
		Realm:      "openconsult",
		Listen:     ":3478",
		PortMin:    49152,
		PortMax:    65535,
		UserQuota:  10,
		TotalQuota: 1000,

		AllocationRate:    20,
		AllocationBurst:   60,
		StreamsPerAddress: 64,

		Now: time.Now,
	}
}

// Validate reports what New would refuse in c, without opening anything,
// for a configuration check before a start.
func (c Config) Validate() error {
	n, err := c.normalize()
	if err != nil {
		return err
	}
	_, err = newCredentials(n.Realm, n.Secrets, n.StaticUsers)
	return err
}

// normalize validates c and fills in defaults, returning a copy the caller
// can no longer change under the running relay.
func (c Config) normalize() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Realm == "" {
		bad("no realm")
	}
	if c.Listen == "" {
		bad("no listen address")
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen address %q: %w", c.Listen, err)
	}
	seen := map[string]bool{c.Listen: true}
	for _, l := range c.MoreListen {
		// Port 0 picks a free port each time, so it may repeat.
		if _, port, err := net.SplitHostPort(l); err != nil {
			bad("listen address %q: %w", l, err)
		} else if seen[l] && port != "0" {
			bad("listen address %q given twice", l)
		}
		seen[l] = true
	}
	c.MoreListen = append([]string(nil), c.MoreListen...)
	if _, _, err := net.SplitHostPort(c.TLSListen); c.TLSListen != "" && err != nil {
		bad("TLS listen address %q: %w", c.TLSListen, err)
	}
	if c.TLSListen != "" && (c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil)) {
		bad("TLS listener %s without a certificate", c.TLSListen)
	}
	if c.TLSListen != "" && c.TLSListener != nil {
		bad("both a TLS listen address and a TLS listener")
	}
	c.RelayBindIP, c.PublicIP = c.RelayBindIP.Unmap(), c.PublicIP.Unmap()
	switch {
	case !c.RelayBindIP.IsValid():
		bad("no relay bind address")
	case !c.RelayBindIP.Is4():
		bad("relay bind address %s is not IPv4 (give an IPv6 one as the IPv6 relay bind address)", c.RelayBindIP)
	case c.RelayBindIP.IsUnspecified() && !c.PublicIP.IsValid():
		bad("relay bind address %s needs a public address to tell clients", c.RelayBindIP)
	}
	if !c.PublicIP.IsValid() {
		c.PublicIP = c.RelayBindIP
	} else if !c.PublicIP.Is4() || c.PublicIP.IsUnspecified() {
		bad("public address %s is not a usable IPv4 address", c.PublicIP)
	}
	c.RelayBindIP6, c.PublicIP6 = c.RelayBindIP6.WithZone(""), c.PublicIP6.WithZone("")
	switch {
	case !c.RelayBindIP6.IsValid():
		if c.PublicIP6.IsValid() {
			bad("public IPv6 address %s without an IPv6 relay bind address", c.PublicIP6)
		}
	case !c.RelayBindIP6.Is6() || c.RelayBindIP6.Is4In6():
		bad("IPv6 relay bind address %s is not IPv6", c.RelayBindIP6)
	case c.RelayBindIP6.IsUnspecified() && !c.PublicIP6.IsValid():
		bad("IPv6 relay bind address %s needs a public IPv6 address to tell clients", c.RelayBindIP6)
	}
	if c.RelayBindIP6.IsValid() && !c.PublicIP6.IsValid() {
		c.PublicIP6 = c.RelayBindIP6
	} else if c.PublicIP6.IsValid() && (!c.PublicIP6.Is6() || c.PublicIP6.Is4In6() || c.PublicIP6.IsUnspecified()) {
		bad("public IPv6 address %s is not a usable IPv6 address", c.PublicIP6)
	}
	if c.PortMin == 0 || c.PortMax < c.PortMin {
		bad("relay port range %d-%d is empty", c.PortMin, c.PortMax)
	}
	if c.UserQuota < 0 {
		bad("negative user quota")
	}
	if c.TotalQuota < 1 {
		bad("total quota %d: it must be at least 1", c.TotalQuota)
	}
	if c.AllocationRate < 0 || c.AllocationRate != c.AllocationRate {
		bad("allocation rate %v: it must be 0 (no limit) or more", c.AllocationRate)
	}
	if c.AllocationRate > 0 && c.AllocationBurst < 1 {
		bad("allocation burst %d: it must be at least 1 with a rate limit", c.AllocationBurst)
	}
	if c.StreamsPerAddress < 0 {
		bad("negative connections per address")
	}
	if c.MaxBPS < 0 {
		bad("negative bandwidth cap")
	}
	if c.MaxTotalBPS < 0 {
		bad("negative relay-wide bandwidth cap")
	}
	var err error
	if c.Policy.Allow, err = normalizePrefixes(c.Policy.Allow); err != nil {
		bad("allowed peers: %w", err)
	}
	if c.Policy.Deny, err = normalizePrefixes(c.Policy.Deny); err != nil {
		bad("denied peers: %w", err)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.firstFrameTimeout <= 0 {
		c.firstFrameTimeout = firstFrameTimeout
	}
	if c.noAllocationTimeout <= 0 {
		c.noAllocationTimeout = noAllocationTimeout
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("relay config: %w", errors.Join(errs...))
	}
	return c, nil
}
