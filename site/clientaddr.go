package site

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Headers a trusted reverse proxy can name the client in.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded" // RFC 7239
)

// proxies says which peers may name the client of a request, and in which
// header. A request from any other peer is its own client, whatever headers
// it carries.
type proxies struct {
	trusted []netip.Prefix
	header  string
}

type clientKey struct{}

// withClient puts the request's client address in its context, for the
// rate limits and the audit log.
func (p proxies) withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := p.clientIP(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, ip)))
	})
}

// clientIP walks the proxy chain from the peer leftward and stops at the
// first address that is not a trusted proxy: everything left of it was
// written by the client and proves nothing. A hop that does not parse
// ("unknown", an obfuscated name) ends the walk at the last trusted proxy.
func (p proxies) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !p.isTrusted(peer) {
		return host
	}
	client := peer
	hops := p.hops(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(hops[i])
		if err != nil {
			break
		}
		client = a
		if !p.isTrusted(a) {
			break
		}
	}
	return client.String()
}

func (p proxies) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// hops lists the addresses of the configured header, left to right, across
// all its lines.
func (p proxies) hops(h http.Header) []string {
	var out []string
	for _, line := range h.Values(p.header) {
		for elem := range strings.SplitSeq(line, ",") {
			if p.header != HeaderForwarded {
				out = append(out, strings.TrimSpace(elem))
				continue
			}
			out = append(out, forwardedFor(elem))
		}
	}
	return out
}

// forwardedFor returns the for= parameter of one Forwarded element, or ""
// when it has none.
func forwardedFor(elem string) string {
	for pair := range strings.SplitSeq(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// parseHop reads one hop: 192.0.2.1, 192.0.2.1:4711, 2001:db8::1 or
// [2001:db8::1]:4711.
func parseHop(s string) (netip.Addr, error) {
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end > 0 {
			s = s[1:end]
		}
	} else if strings.Count(s, ":") == 1 {
		s, _, _ = strings.Cut(s, ":")
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}
