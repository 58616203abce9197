package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/openconsult/openconsult/internal/tlsconf"
)

// The URLs browsers get for the embedded relay are built from what its
// listeners are bound to, never from a guess; validateRelayURLs refuses a
// configuration whose URLs would lead browsers somewhere else than a relay.

// relayURLs returns the STUN and TURN URLs of the embedded relay: UDP and
// TCP at each address its listeners are bound to, in -relay-listen's order; TURN over TLS at -public-url's host
// with the TLS listener's port (validateRelayURLs made sure that host leads
// there), or with the site's own port when the relay shares it.
func relayURLs(public *url.URL, udpTCP []net.Addr, tlsAddr net.Addr, shared bool) (stun, turn []string) {
	for _, a := range udpTCP {
		addr := a.String()
		stun = append(stun, "stun:"+addr)
		turn = append(turn, "turn:"+addr+"?transport=udp", "turn:"+addr+"?transport=tcp")
	}
	switch {
	case shared:
		turn = append(turn, "turns:"+net.JoinHostPort(public.Hostname(), publicPort(public))+"?transport=tcp")
	case tlsAddr != nil:
		_, port, _ := net.SplitHostPort(tlsAddr.String())
		turn = append(turn, "turns:"+net.JoinHostPort(public.Hostname(), port)+"?transport=tcp")
	}
	return stun, turn
}

// publicPort is the port browsers reach the site on.
func publicPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
}

// validateRelayURLs checks that the TURN URLs given to browsers reach a
// relay: the TLS listener's automatic URL names the site's host, so the
// listener must be on the site's address and not on its HTTPS port; a
// hand-written turns: URL must not name the site's own address and port
// unless the relay shares it.
func (s *settings) validateRelayURLs() []error {
	var errs []error
	bad := func(name, format string, args ...any) { errs = append(errs, s.set.Invalid(name, format, args...)) }
	listenHost, listenPort, _ := net.SplitHostPort(s.listen.Value)
	if s.relayOnHTTPS {
		if !s.relayListen.on() {
			bad("relay-on-https-port", "needs the embedded relay: set -relay-listen")
		}
		if s.relayTLSListen.Value != "" {
			bad("relay-on-https-port", "choose either -relay-tls-listen or -relay-on-https-port, not both")
		}
	}
	if s.relayListen.on() && s.relayTLSListen.Value != "" && len(s.turnURLs.Values) == 0 {
		if host, port, err := net.SplitHostPort(s.relayTLSListen.Value); err == nil {
			switch {
			case port == listenPort && port != "0" && overlaps(host, listenHost):
				bad("relay-tls-listen", "%s is the HTTPS port of -listen: browsers told turns: there would reach the site, not the relay; share the port with -relay-on-https-port instead", s.relayTLSListen.Value)
			case !leadsTo(host, listenHost) && !(s.dev && !s.set.IsSet("relay-tls-listen")):
				// -dev's own loopback relay serves browsers on this machine.
				bad("relay-tls-listen", "%s is not on the address of -listen (%s), so the site's host name may not lead to it: give -turn-url with the relay's own host name, or share the HTTPS port with -relay-on-https-port", s.relayTLSListen.Value, s.listen.Value)
			}
		}
	}
	if site := s.siteHost(); site != "" && !s.relayOnHTTPS {
		for _, u := range s.turnURLs.Values {
			if hp, ok := turnsHostPort(u); ok && strings.EqualFold(hp, site) {
				bad("turn-url", "%q names the site's own address and port: browsers would reach the HTTPS site, not a relay; serve TURN there with -relay-listen and -relay-on-https-port, or name the relay's own address", u)
			}
		}
	}
	return errs
}

// siteHost is host:port of -public-url (or the first ACME domain), or ""
// when only the start will know it.
func (s *settings) siteHost() string {
	switch {
	case s.publicURL.Value != nil:
		return net.JoinHostPort(s.publicURL.Value.Hostname(), publicPort(s.publicURL.Value))
	case len(s.acmeDomains.Values) > 0:
		return net.JoinHostPort(s.acmeDomains.Values[0], "443")
	}
	return ""
}

// turnsHostPort returns host:port of a turns: URL (RFC 7065), with the
// default port 5349.
func turnsHostPort(u string) (string, bool) {
	rest, ok := strings.CutPrefix(u, "turns:")
	if !ok {
		return "", false
	}
	rest, _, _ = strings.Cut(rest, "?")
	if host, port, err := net.SplitHostPort(rest); err == nil {
		return net.JoinHostPort(host, port), true
	}
	return net.JoinHostPort(strings.Trim(rest, "[]"), "5349"), true
}

// hostAddr parses a listen host: unspecified for "" and wildcards,
// loopback for localhost.
func hostAddr(host string) (netip.Addr, error) {
	switch host {
	case "":
		return netip.IPv6Unspecified(), nil
	case "localhost":
		return netip.IPv6Loopback(), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, errors.New("not an address")
	}
	return a.Unmap(), nil
}

// overlaps reports whether listeners on hosts a and b would share
// addresses.
func overlaps(a, b string) bool {
	x, errX := hostAddr(a)
	y, errY := hostAddr(b)
	if errX != nil || errY != nil {
		return a == b
	}
	return x.IsUnspecified() || y.IsUnspecified() || x == y || (x.IsLoopback() && y.IsLoopback())
}

// leadsTo reports whether a listener on host tls is certainly reached at
// the address the site's host name leads to, the site being on host site:
// it listens on every address, or on the site's own.
func leadsTo(tls, site string) bool {
	x, errX := hostAddr(tls)
	y, errY := hostAddr(site)
	if errX != nil || errY != nil {
		return tls == site
	}
	return x.IsUnspecified() || x == y || (x.IsLoopback() && y.IsLoopback())
}

// checkConfig is -check: the settings were validated on load; it also
// reads the certificate files and prints where browsers will be sent.
func checkConfig(s *settings, stdout io.Writer) error {
	if s.tlsCert != "" {
		if _, err := tlsconf.NewFileSource(s.tlsCert, s.tlsKey); err != nil {
			return s.set.Invalid("tls-cert", "%v", err)
		}
	}
	turn := "none"
	switch {
	case len(s.turnURLs.Values) > 0:
		turn = strings.Join(s.turnURLs.Values, " ")
	case s.relayListen.on():
		turn = "embedded relay: " + s.relaySummary()
		if s.relayOnHTTPS {
			turn += ", turns: at the -public-url host and port, shared with HTTPS"
		} else if s.relayTLSListen.Value != "" {
			_, port, _ := net.SplitHostPort(s.relayTLSListen.Value)
			turn += ", turns: at the -public-url host and port " + port
		}
	}
	fmt.Fprintf(stdout, "configuration valid: listen %s%s, public %s, TURN URLs for browsers: %s\n", s.listen.Value, s.proxyProto.summary(), s.siteHost(), turn)
	return nil
}
