package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// The embedded relay's settings beyond its listeners, named after turnd's
// with the relay- prefix: -relay-listen (repeatable like turnd -listen),
// -relay-public-ip (turnd -public-ip), -relay-ip6 and -relay-public-ip6
// (turnd -relay-ip6, -public-ip6),
// -relay-max-bps and -relay-max-total-bps (turnd -max-bps, -max-total-bps).

// listenList is -relay-listen: "host:port" addresses, each with a UDP and
// a TCP listener, given by repeating the flag, separated by commas, or as
// an array in the config file; "off" (or nothing) is no relay.
type listenList struct {
	Values []string
}

func (l *listenList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.Values, ",")
}

func (l *listenList) Set(v string) error {
	if v == "" || v == "off" {
		l.Values = nil
		return nil
	}
	for part := range strings.SplitSeq(v, ",") {
		a := strings.TrimSpace(part)
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("%q is not a listen address (want host:port, :port, or off)", a)
		}
		for _, have := range l.Values {
			if have == a && !strings.HasSuffix(a, ":0") {
				return fmt.Errorf("%q is given twice", a)
			}
		}
		l.Values = append(l.Values, a)
	}
	return nil
}

// Reset forgets the values, so that a lower-precedence source replaces
// rather than appends.
func (l *listenList) Reset() { l.Values = nil }

// on reports whether the embedded relay runs.
func (l *listenList) on() bool { return len(l.Values) > 0 }

// relayBind returns the IPv4 (or first) listen address's own IP, which
// IPv4 relay sockets bind to and browsers are sent to: a wildcard would
// leave the relayed address to a guess.
func (s *settings) relayBind() (netip.Addr, error) {
	first := s.relayListen.Values[0]
	for _, a := range s.relayListen.Values {
		host, _, _ := net.SplitHostPort(a)
		if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().Is4() {
			first = a
			break
		}
	}
	host, _, _ := net.SplitHostPort(first)
	bind, err := netip.ParseAddr(host)
	if err != nil || bind.IsUnspecified() || !bind.Unmap().Is4() {
		return netip.Addr{}, s.set.Invalid("relay-listen", "give the relay's own IPv4 address, such as 127.0.0.1:3478 or 198.51.100.7:3478 (an IPv6 address may follow it)")
	}
	return bind.Unmap(), nil
}

// validateRelay checks the embedded relay's settings.
func (s *settings) validateRelay() []error {
	var errs []error
	bad := func(name, format string, args ...any) { errs = append(errs, s.set.Invalid(name, format, args...)) }
	if s.relayListen.on() {
		if _, err := s.relayBind(); err != nil {
			errs = append(errs, err)
		}
	} else {
		for _, name := range []string{"relay-public-ip", "relay-ip6", "relay-public-ip6", "relay-max-bps", "relay-max-total-bps"} {
			if s.set.IsSet(name) {
				bad(name, "needs the embedded relay: set -relay-listen")
			}
		}
	}
	if s.relayMaxBPS < 0 {
		bad("relay-max-bps", "must not be negative")
	}
	if s.relayMaxTotalBPS < 0 {
		bad("relay-max-total-bps", "must not be negative")
	}
	if s.relayMaxBPS > 0 && s.relayMaxTotalBPS > 0 && s.relayMaxTotalBPS < s.relayMaxBPS {
		bad("relay-max-total-bps", "%d is below -relay-max-bps %d: one allocation could never reach its own cap", s.relayMaxTotalBPS, s.relayMaxBPS)
	}
	if s.relayPublicIP != "" {
		if a, err := netip.ParseAddr(s.relayPublicIP); err != nil || !a.Is4() || a.IsUnspecified() {
			bad("relay-public-ip", "%q is not an IPv4 address", s.relayPublicIP)
		}
	}
	if s.relayIP6 != "" {
		if a, err := netip.ParseAddr(s.relayIP6); err != nil || !a.Is6() || a.Is4In6() {
			bad("relay-ip6", "%q is not an IPv6 address", s.relayIP6)
		}
	}
	if s.relayPublicIP6 != "" {
		if s.relayIP6 == "" {
			bad("relay-public-ip6", "give -relay-ip6 too")
		}
		if a, err := netip.ParseAddr(s.relayPublicIP6); err != nil || !a.Is6() || a.Is4In6() || a.IsUnspecified() {
			bad("relay-public-ip6", "%q is not an IPv6 address", s.relayPublicIP6)
		}
	}
	return errs
}

// relay6 returns the IPv6 bind and public addresses of the embedded relay,
// both zero without -relay-ip6 (validated on load).
func (s *settings) relay6() (bind, public netip.Addr) {
	if s.relayIP6 == "" {
		return
	}
	bind = netip.MustParseAddr(s.relayIP6)
	if s.relayPublicIP6 != "" {
		public = netip.MustParseAddr(s.relayPublicIP6)
	}
	return bind, public
}

// relayPublic returns -relay-public-ip, or the zero address (validated on
// load): the relay then tells browsers its bind address.
func (s *settings) relayPublic() netip.Addr {
	if s.relayPublicIP == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s.relayPublicIP)
}

// advertised returns the listeners' addresses as browsers reach them:
// those on a bind address behind 1:1 NAT at its public address.
func advertised(addrs []net.Addr, nat map[netip.Addr]netip.Addr) []net.Addr {
	out := make([]net.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ua, ok := a.(*net.UDPAddr); ok {
			if pub, ok := nat[ua.AddrPort().Addr().Unmap()]; ok && pub.IsValid() {
				a = net.UDPAddrFromAddrPort(netip.AddrPortFrom(pub, ua.AddrPort().Port()))
			}
		}
		out = append(out, a)
	}
	return out
}

// relaySummary describes the relay's listeners, IPv6 relaying and caps for
// -check.
func (s *settings) relaySummary() string {
	out := "turn: at " + strings.Join(s.relayListen.Values, " and ") + " (udp, tcp)"
	if public := s.relayPublic(); public.IsValid() {
		out += ", told to browsers as " + public.String() + " behind 1:1 NAT"
	}
	if bind, public := s.relay6(); bind.IsValid() {
		out += ", IPv6 relaying from " + bind.String()
		if public.IsValid() {
			out += " (public " + public.String() + ")"
		}
	}
	caps := []string{}
	if s.relayMaxBPS > 0 {
		caps = append(caps, fmt.Sprintf("%d bit/s per allocation", s.relayMaxBPS))
	}
	if s.relayMaxTotalBPS > 0 {
		caps = append(caps, fmt.Sprintf("%d bit/s in all", s.relayMaxTotalBPS))
	}
	if len(caps) > 0 {
		out += ", capped at " + strings.Join(caps, " and ")
	}
	return out
}
