//go:build linux

package udppoll

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

// A connected socket shares its socket's address: the kernel hands it the
// datagrams of its remote address and leaves everyone else's to the
// first socket; the address stays closed to other sockets.
func TestConnectedSharesTheAddress(t *testing.T) {
	tests := []struct {
		name   string
		listen netip.AddrPort
	}{
		{"IPv4", loopback},
		{"IPv6 wildcard with IPv4 peers", netip.MustParseAddrPort("[::]:0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{}
			s := newSet(t, 1, c.handle)
			first, err := s.Listen(tt.listen, 1)
			if err != nil {
				t.Fatal(err)
			}
			at := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), first.LocalAddr().Port())
			a, b, x := udpPeer(t), udpPeer(t), udpPeer(t)
			conn, err := first.Connected(addrOf(a))
			if err != nil {
				t.Fatal(err)
			}
			connB, err := first.Connected(addrOf(b))
			if err != nil {
				t.Fatalf("a second connected socket: %v", err)
			}
			defer connB.Close()
			if conn.RemoteAddr() != addrOf(a) || conn.LocalAddr() != first.LocalAddr() {
				t.Fatalf("connected socket %s to %s, want %s to %s", conn.LocalAddr(), conn.RemoteAddr(), first.LocalAddr(), addrOf(a))
			}
			if other, err := s.Listen(first.LocalAddr(), 2); err == nil {
				other.Close()
				t.Fatal("Listen bound a third socket to the shared address")
			}

			// Every peer reaches the handler, with the socket's value.
			send(t, a, at, "from a")
			send(t, b, at, "from b")
			send(t, x, at, "from x")
			c.waitFor(t, "from a", addrOf(a), "from b", addrOf(b), "from x", addrOf(x))

			// Sends to the remote address, and to another, leave from the
			// shared address.
			for _, p := range []net.PacketConn{a, b} {
				if _, err := conn.WriteToUDPAddrPort([]byte("to peer"), addrOf(p)); err != nil {
					t.Fatal(err)
				}
				expect(t, p, "to peer", at.Port())
			}

			// With the first socket closed, a's and b's datagrams still
			// arrive: the kernel delivers them to their connected sockets,
			// and x's to none.
			first.Close()
			send(t, x, at, "x after close")
			send(t, a, at, "a after close")
			send(t, b, at, "b after close")
			c.waitFor(t, "a after close", addrOf(a), "b after close", addrOf(b))
			if c.has("x after close") {
				t.Fatal("x's datagram reached a connected socket")
			}
			conn.Close()
			if _, err := conn.WriteToUDPAddrPort([]byte("x"), addrOf(a)); err == nil {
				t.Fatal("a closed connected socket wrote")
			}
		})
	}
}

// A send after the peer's port was closed and opened again is not lost
// to the ICMP error the closed port caused.
func TestConnectedSendsAfterPortUnreachable(t *testing.T) {
	s := newSet(t, 1, (&collector{}).handle)
	first, err := s.Listen(loopback, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := udpPeer(t)
	to := addrOf(p)
	conn, err := first.Connected(to)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	_, _ = conn.WriteToUDPAddrPort([]byte("lost"), to) // the kernel answers with an ICMP error
	time.Sleep(50 * time.Millisecond)
	again, err := net.ListenPacket("udp4", to.String())
	if err != nil {
		t.Skipf("the peer's port was taken meanwhile: %v", err)
	}
	defer again.Close()
	if _, err := conn.WriteToUDPAddrPort([]byte("after"), to); err != nil {
		t.Fatalf("send after the ICMP error: %v", err)
	}
	expect(t, again, "after", first.LocalAddr().Port())
}

func udpPeer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func addrOf(p net.PacketConn) netip.AddrPort { return p.LocalAddr().(*net.UDPAddr).AddrPort() }

func send(t *testing.T, from net.PacketConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := from.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, p net.PacketConn, msg string, fromPort uint16) {
	t.Helper()
	buf := make([]byte, 64)
	_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := p.ReadFrom(buf)
	if err != nil || string(buf[:n]) != msg || from.(*net.UDPAddr).Port != int(fromPort) {
		t.Fatalf("got %q from %v (%v), want %q from port %d", buf[:n], from, err, msg, fromPort)
	}
}

// waitFor waits until the handler got each payload from its sender,
// given as payload, sender pairs.
func (c *collector) waitFor(t *testing.T, pairs ...any) {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		want := received{socket: 1, payload: pairs[i].(string), headroom: len(pairs[i].(string)), from: pairs[i+1].(netip.AddrPort)}
		eventually.True(t, 5*time.Second, want.payload, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return slices.Contains(c.got, want)
		})
	}
}

func (c *collector) has(payload string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.got, func(r received) bool { return r.payload == payload })
}
