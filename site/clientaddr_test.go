package site

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddressComesOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	tests := []struct {
		name    string
		header  string
		peer    string
		values  []string // lines of the header
		want    string
		trusted []netip.Prefix
	}{
		{"untrusted peer's header ignored", HeaderXForwardedFor, "198.51.100.7:5000", []string{"192.0.2.1"}, "198.51.100.7", trusted},
		{"no proxies configured", HeaderXForwardedFor, "10.0.0.2:5000", []string{"192.0.2.1"}, "10.0.0.2", nil},
		{"trusted proxy names the client", HeaderXForwardedFor, "10.0.0.2:5000", []string{"192.0.2.1"}, "192.0.2.1", trusted},
		{"client-written entries left of the real one ignored", HeaderXForwardedFor, "10.0.0.2:5000", []string{"203.0.113.9, 192.0.2.1"}, "192.0.2.1", trusted},
		{"chain of trusted proxies", HeaderXForwardedFor, "10.0.0.2:5000", []string{"203.0.113.9, 192.0.2.1, 10.1.1.1", "10.2.2.2"}, "192.0.2.1", trusted},
		{"trusted proxy without header", HeaderXForwardedFor, "10.0.0.2:5000", nil, "10.0.0.2", trusted},
		{"unreadable hop stops at the last proxy", HeaderXForwardedFor, "10.0.0.2:5000", []string{"192.0.2.1, unknown"}, "10.0.0.2", trusted},
		{"hop with port", HeaderXForwardedFor, "10.0.0.2:5000", []string{"192.0.2.1:4711"}, "192.0.2.1", trusted},
		{"forwarded header", HeaderForwarded, "10.0.0.2:5000", []string{`for=203.0.113.9, for="[2001:db8::5]:4711";proto=https`}, "2001:db8::5", trusted},
		{"forwarded through an IPv6 proxy", HeaderForwarded, "[2001:db8:1::3]:443", []string{`for=192.0.2.1;by=x, For="[2001:db8:1::4]"`}, "192.0.2.1", trusted},
		{"forwarded obfuscated hop", HeaderForwarded, "10.0.0.2:5000", []string{`for=_hidden`}, "10.0.0.2", trusted},
		{"other header not read", HeaderForwarded, "10.0.0.2:5000", nil, "10.0.0.2", trusted},
		{"IPv4-mapped peer", HeaderXForwardedFor, "[::ffff:10.0.0.2]:5000", []string{"192.0.2.1"}, "192.0.2.1", trusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.values {
				r.Header.Add(tt.header, v)
			}
			// The header the proxies do not write is the client's own.
			if tt.header == HeaderForwarded {
				r.Header.Add(HeaderXForwardedFor, "198.18.0.66")
			} else {
				r.Header.Add(HeaderForwarded, "for=198.18.0.66")
			}
			p := proxies{trusted: tt.trusted, header: tt.header}
			if got := p.clientIP(r); got != tt.want {
				t.Fatalf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzClientAddress(f *testing.F) {
	f.Add("for=192.0.2.1;proto=https, for=\"[2001:db8::1]:80\"", "192.0.2.1, 10.0.0.1")
	f.Add("for=unknown", "[::1]:80, garbage")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, forwarded, xff string) {
		for _, header := range []string{HeaderForwarded, HeaderXForwardedFor} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.0.0.2:5000"
			r.Header.Set(HeaderForwarded, forwarded)
			r.Header.Set(HeaderXForwardedFor, xff)
			got := proxies{trusted: trusted, header: header}.clientIP(r)
			if _, err := netip.ParseAddr(got); err != nil {
				t.Fatalf("clientIP = %q, not an address", got)
			}
		}
	})
}
