package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// lifetimeOf returns the LIFETIME of a response in seconds, or -1.
func lifetimeOf(m *stun.Message) int {
	v, err := m.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		return -1
	}
	return int(binary.BigEndian.Uint32(v))
}

// rawUDP opens a raw client over UDP from 127.0.0.1 with a credential for
// id.
func rawUDP(t *testing.T, tr *testRelay, id string) *rawClient {
	t.Helper()
	user, pass := mint(testSecret, id)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newRawClient(t, conn, tr.Addr(), user, pass)
}

func family(f byte) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrRequestedAddressFamily, Value: []byte{f, 0, 0, 0}}
}

var requestedTCP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{6, 0, 0, 0}}

// RFC 8656, 7.2 and 7.3: a requested lifetime below the default gets the
// default, one above the maximum the maximum; a Refresh of zero deletes.
func TestLifetimeIsBounded(t *testing.T) {
	tr := startRelay(t, nil)
	tests := []struct {
		name string
		ask  []stun.Setter
		want int
	}{
		{"none", nil, 600},
		{"zero", []stun.Setter{lifetime(0)}, 600},
		{"one second", []stun.Setter{lifetime(1)}, 600},
		{"just below the default", []stun.Setter{lifetime(599)}, 600},
		{"half an hour", []stun.Setter{lifetime(1800)}, 1800},
		{"the maximum", []stun.Setter{lifetime(3599)}, 3599},
		{"an hour", []stun.Setter{lifetime(3600)}, 3599},
		{"a day", []stun.Setter{lifetime(86400)}, 3599},
		{"the largest value", []stun.Setter{lifetime(0xFFFFFFFF)}, 3599},
	}
	for i, tt := range tests {
		t.Run("Allocate "+tt.name, func(t *testing.T) {
			raw := rawUDP(t, tr, "g_life"+string(rune('a'+i)))
			resp := raw.request(stun.MethodAllocate, append([]stun.Setter{requestedUDP}, tt.ask...)...)
			if code := errorCode(resp); code != 0 {
				t.Fatalf("Allocate: error %d", code)
			}
			if got := lifetimeOf(resp); got != tt.want {
				t.Fatalf("LIFETIME %d, want %d", got, tt.want)
			}
		})
	}

	raw := rawUDP(t, tr, "g_refresh")
	if code := errorCode(raw.request(stun.MethodAllocate, requestedUDP)); code != 0 {
		t.Fatalf("Allocate: error %d", code)
	}
	for _, tt := range []struct {
		ask, want int
	}{{1, 600}, {900, 900}, {7200, 3599}} {
		resp := raw.request(stun.MethodRefresh, lifetime(uint32(tt.ask)))
		if got := lifetimeOf(resp); errorCode(resp) != 0 || got != tt.want {
			t.Fatalf("Refresh asking %d s: error %d, LIFETIME %d, want %d", tt.ask, errorCode(resp), got, tt.want)
		}
	}
	before := tr.Allocations()
	if resp := raw.request(stun.MethodRefresh, lifetime(0)); errorCode(resp) != 0 || lifetimeOf(resp) != 0 {
		t.Fatalf("Refresh of zero: error %d, LIFETIME %d, want a deletion", errorCode(resp), lifetimeOf(resp))
	}
	if got := tr.Allocations(); got != before-1 {
		t.Fatalf("%d allocations after a Refresh of zero, want %d", got, before-1)
	}
	if got := testutil.ToFloat64(tr.metrics.lifetimeBounded); got != 6+2 {
		t.Fatalf("%v lifetimes bounded, want 8", got)
	}
}

// A rewritten LIFETIME must not open a way around the credential: a
// request with a wrong password is still refused.
func TestBoundedLifetimeNeedsTheCredential(t *testing.T) {
	tr := startRelay(t, nil)
	raw := rawUDP(t, tr, "g_forger")
	raw.pass = "not-the-password"
	if code := errorCode(raw.request(stun.MethodAllocate, requestedUDP, lifetime(1))); code != 401 {
		t.Fatalf("Allocate with a wrong password and LIFETIME 1: code %d, want 401", code)
	}
	if got := testutil.ToFloat64(tr.metrics.lifetimeBounded); got != 0 {
		t.Fatalf("the gate rewrote an unauthenticated request (%v)", got)
	}
}

// RFC 6156: the relayed address family a client asks for, 440 for one the
// relay does not offer, 443 for a peer or refresh of the other family.
func TestAddressFamilies(t *testing.T) {
	if !ipv6Loopback(t) {
		t.Skip("no IPv6 loopback address on this host")
	}
	v4only := startRelay(t, nil)
	dual := startRelay(t, func(c *Config) {
		c.RelayBindIP6 = netip.IPv6Loopback()
		c.Policy.Allow = append(c.Policy.Allow, netip.MustParsePrefix("::1/128"))
	})
	tests := []struct {
		name   string
		tr     *testRelay
		ask    []stun.Setter
		code   int
		family string // of the relayed address: "4" or "6"
	}{
		{"IPv4 relay, no family", v4only, nil, 0, "4"},
		{"IPv4 relay, IPv4 asked", v4only, []stun.Setter{family(0x01)}, 0, "4"},
		{"IPv4 relay, IPv6 asked", v4only, []stun.Setter{family(0x02)}, 440, ""},
		{"IPv4 relay, unknown family", v4only, []stun.Setter{family(0x03)}, 440, ""},
		{"dual relay, no family from an IPv4 client", dual, nil, 0, "4"},
		{"dual relay, IPv6 asked", dual, []stun.Setter{family(0x02)}, 0, "6"},
		{"dual relay, unknown family", dual, []stun.Setter{family(0x03)}, 440, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := rawUDP(t, tt.tr, "g_family"+string(rune('a'+i)))
			resp := raw.request(stun.MethodAllocate, append([]stun.Setter{requestedUDP}, tt.ask...)...)
			if got := errorCode(resp); got != tt.code {
				t.Fatalf("Allocate: code %d, want %d", got, tt.code)
			}
			if tt.code != 0 {
				return
			}
			var relayed stun.XORMappedAddress
			if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
				t.Fatal(err)
			}
			got := "6"
			if relayed.IP.To4() != nil {
				got = "4"
			}
			if got != tt.family {
				t.Fatalf("relayed address %s, want IPv%s", relayed.IP, tt.family)
			}
		})
	}

	t.Run("IPv6 allocation relays to an IPv6 peer", func(t *testing.T) {
		raw := rawUDP(t, dual, "g_v6relay")
		resp := raw.request(stun.MethodAllocate, requestedUDP, family(0x02))
		var relayed stun.XORMappedAddress
		if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
			t.Fatalf("Allocate: error %d", errorCode(resp))
		}
		peer, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		v4peer := newPeer(t)
		if code := errorCode(raw.request(stun.MethodCreatePermission, udpPeer(t, v4peer.LocalAddr()))); code != 443 {
			t.Fatalf("CreatePermission of an IPv4 peer on an IPv6 allocation: code %d, want 443", code)
		}
		if code := errorCode(raw.request(stun.MethodRefresh, family(0x01))); code != 443 {
			t.Fatalf("Refresh naming IPv4 on an IPv6 allocation: code %d, want 443", code)
		}
		to := udpPeer(t, peer.LocalAddr())
		if code := errorCode(raw.request(stun.MethodChannelBind, channelNumber(0x4001), to)); code != 0 {
			t.Fatalf("ChannelBind of an IPv6 peer: code %d", code)
		}
		// The channel fast path, from an IPv4 client to an IPv6 peer and back.
		if _, err := raw.conn.WriteTo(udpChannelData(0x4001, []byte("over IPv6")), dual.Addr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := peer.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "over IPv6" {
			t.Fatalf("IPv6 peer received %q, %v", buf[:n], err)
		}
		if got := from.(*net.UDPAddr).AddrPort(); got.Addr() != netip.IPv6Loopback() || int(got.Port()) != relayed.Port {
			t.Fatalf("IPv6 peer saw the datagram from %s, the relayed address is [%s]:%d", got, relayed.IP, relayed.Port)
		}
		if _, err := peer.WriteTo([]byte("back over IPv6"), from); err != nil {
			t.Fatal(err)
		}
		_ = raw.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err = raw.conn.ReadFrom(buf); err != nil || string(buf[:n]) != string(udpChannelData(0x4001, []byte("back over IPv6"))) {
			t.Fatalf("client received %q, %v", buf[:n], err)
		}
	})
}

// The peer policy holds for IPv6 peers as for IPv4 ones, on IPv6
// allocations.
func TestIPv6PeersRefusedByPolicy(t *testing.T) {
	if !ipv6Loopback(t) {
		t.Skip("no IPv6 loopback address on this host")
	}
	tr := startRelay(t, func(c *Config) { c.RelayBindIP6 = netip.IPv6Loopback() })
	raw := rawUDP(t, tr, "g_v6policy")
	if code := errorCode(raw.request(stun.MethodAllocate, requestedUDP, family(0x02))); code != 0 {
		t.Fatalf("Allocate: error %d", code)
	}
	tests := []struct {
		peer  string
		class string
	}{
		{"::1", ClassLoopback},
		{"fc00::1", ClassULA},
		{"fd12:3456::1", ClassULA},
		{"fe80::1", ClassLinkLocal},
		{"fd00:ec2::254", ClassMetadata},
		{"::ffff:10.0.0.1", ClassPrivate},
		{"64:ff9b::a9fe:a9fe", ClassMetadata},
		{"ff02::1", ClassMulticast},
		{"::", ClassUnspecified},
		{"2606:4700:4700::1111", ""},
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			before := tr.counter(tr.metrics.peerRefusals, tt.class)
			p := xorPeer{ip: netip.MustParseAddr(tt.peer), port: 9}
			for _, method := range []stun.Method{stun.MethodCreatePermission, stun.MethodChannelBind} {
				attrs := []stun.Setter{p}
				if method == stun.MethodChannelBind {
					attrs = append(attrs, channelNumber(0x4002))
				}
				code := errorCode(raw.request(method, attrs...))
				if want := map[bool]int{true: 0, false: 403}[tt.class == ""]; code != want {
					t.Fatalf("%v to %s: code %d, want %d", method, tt.peer, code, want)
				}
			}
			if tt.class != "" && tr.counter(tr.metrics.peerRefusals, tt.class)-before != 2 {
				t.Fatalf("refusals of class %s not counted", tt.class)
			}
		})
	}
}
