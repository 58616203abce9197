package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// refusedPeers are internal destinations, one or more per class, as a
// client would name them.
var refusedPeers = []struct {
	addr    string
	family6 bool // send the IPv4 address in IPv4-mapped IPv6 form
	class   string
}{
	{"127.0.0.1:9", false, ClassLoopback},
	{"[::1]:9", false, ClassLoopback},
	{"127.0.0.1:9", true, ClassLoopback}, // ::ffff:127.0.0.1
	{"0.0.0.0:9", false, ClassUnspecified},
	{"169.254.169.254:80", false, ClassMetadata},
	{"169.254.1.1:9", false, ClassLinkLocal},
	{"10.0.0.1:9", false, ClassPrivate},
	{"192.168.1.1:9", true, ClassPrivate},
	{"172.16.0.1:9", false, ClassPrivate},
	{"100.64.0.1:9", false, ClassCGNAT},
	{"224.0.0.1:9", false, ClassMulticast},
	{"255.255.255.255:9", false, ClassBroadcast},
	{"[fe80::1]:9", false, ClassLinkLocal},
	{"[fd00::1]:9", false, ClassULA},
	{"[64:ff9b::a00:1]:9", false, ClassPrivate}, // NAT64 form of 10.0.0.1
}

func TestRefusedPeersGet403(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			tr := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
			user, pass := mint(testSecret, "g_policy")
			var conn net.PacketConn
			if network == "udp" {
				c, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				conn = c
			} else {
				c, err := net.Dial("tcp", tr.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				conn = turn.NewSTUNConn(c)
			}
			raw := newRawClient(t, conn, tr.Addr(), user, pass)
			if code := errorCode(raw.request(stun.MethodAllocate, requestedUDP)); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			for i, p := range refusedPeers {
				ap := netip.MustParseAddrPort(p.addr)
				peer := xorPeer{ip: ap.Addr(), port: int(ap.Port()), family6: p.family6}
				before := tr.counter(tr.metrics.peerRefusals, p.class)
				if code := errorCode(raw.request(stun.MethodCreatePermission, peer)); code != 403 {
					t.Errorf("CreatePermission %s (mapped %v): code %d, want 403", p.addr, p.family6, code)
				}
				if code := errorCode(raw.request(stun.MethodChannelBind, channelNumber(0x4000+uint16(i)), peer)); code != 403 {
					t.Errorf("ChannelBind %s (mapped %v): code %d, want 403", p.addr, p.family6, code)
				}
				if got := tr.counter(tr.metrics.peerRefusals, p.class) - before; got != 2 {
					t.Errorf("%s refusals of %s counted %v, want 2", p.class, p.addr, got)
				}
			}
		})
	}
}

func TestPionClientSeesForbidden(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
	user, pass := mint(testSecret, "g_policy")
	cl := dial(t, tr, "udp", user, pass)
	cl.allocate(t)
	for _, p := range refusedPeers {
		addr, err := net.ResolveUDPAddr("udp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.CreatePermission(addr); turnCode(err) != 403 {
			t.Errorf("CreatePermission %s: %v, want 403 Forbidden", p.addr, err)
		}
	}
}

func TestLoopbackPeerRefusedUntilAllowed(t *testing.T) {
	user, pass := mint(testSecret, "g_allow")
	peer := newPeer(t)

	closed := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
	relayed := dial(t, closed, "udp", user, pass).allocate(t)
	if _, err := relayed.WriteTo([]byte("to loopback"), peer.LocalAddr()); turnCode(err) != 403 {
		t.Fatalf("relaying to %s without Allow: %v, want 403", peer.LocalAddr(), err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := peer.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("the refused peer received %d bytes", n)
	}

	open := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{Allow: []netip.Prefix{loopback}} })
	relayed = dial(t, open, "udp", user, pass).allocate(t)
	exchange(t, relayed, peer, []byte("to loopback, allowed"), []byte("and back"))

	denied := startRelay(t, func(c *Config) {
		c.Policy = PeerPolicy{Allow: []netip.Prefix{loopback}, Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	})
	relayed = dial(t, denied, "udp", user, pass).allocate(t)
	if _, err := relayed.WriteTo([]byte("deny wins"), peer.LocalAddr()); turnCode(err) != 403 {
		t.Fatalf("relaying to a denied and allowed peer: %v, want 403", err)
	}
}

// One refused address refuses the whole CreatePermission: the allowed
// address in the same request gets no permission either.
func TestCreatePermissionIsAllOrNothing(t *testing.T) {
	tr := startRelay(t, nil)
	raw, _ := allocateUDP(t, tr, "g_mixed")
	peer := newPeer(t)
	allowed := udpPeer(t, peer.LocalAddr())
	refused := xorPeer{ip: netip.MustParseAddr("10.0.0.1"), port: 9}
	if code := errorCode(raw.request(stun.MethodCreatePermission, allowed, refused)); code != 403 {
		t.Fatalf("mixed CreatePermission: code %d, want 403", code)
	}
	raw.send(allowed, []byte("must not arrive"))
	_ = peer.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := peer.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("a permission was installed by a refused request: the peer received %d bytes", n)
	}

	if code := errorCode(raw.request(stun.MethodCreatePermission, allowed)); code != 0 {
		t.Fatalf("CreatePermission of the allowed peer alone: code %d", code)
	}
	raw.send(allowed, []byte("arrives"))
	buf := make([]byte, 100)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "arrives" {
		t.Fatalf("peer received %q, %v", buf[:n], err)
	}
}

// The 403 is only for clients that proved their credential; anyone else
// learns nothing about the policy.
func TestUnauthenticatedPermissionIsNotAnswered403(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
	raw, _ := allocateUDP(t, tr, "g_guess")
	raw.pass = "not-the-password"
	peer := xorPeer{ip: netip.MustParseAddr("10.0.0.1"), port: 9}
	if code := errorCode(raw.request(stun.MethodCreatePermission, peer)); code != 401 {
		t.Fatalf("CreatePermission with a wrong password: code %d, want pion's 401", code)
	}
	if got := tr.counter(tr.metrics.peerRefusals, ClassPrivate); got != 0 {
		t.Fatalf("an unauthenticated request was judged by the policy (%v refusals)", got)
	}
}
