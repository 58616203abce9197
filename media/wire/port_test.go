package wire

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
)

// onPort is a node connection on a shared Port.
func onPort(t *testing.T, port *Port, cert Certificate, i int) *node {
	t.Helper()
	n := &node{addr: port.LocalAddr().(*net.UDPAddr), states: make(chan State, 16)}
	var err error
	n.conn, err = New(Config{
		Local:       Credentials{Ufrag: fmt.Sprintf("conn%04d", i), Pwd: "node-password-of-24-chars"},
		Certificate: cert,
		LocalAddr:   port.LocalAddr(),
		Send:        port.Send,
		Handler:     n,
		OnState:     func(s State) { n.states <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := port.Route(n.conn.cfg.Local.Ufrag, n.conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		port.Forget(n.conn)
		_ = n.conn.Close()
	})
	return n
}

// newTestPort is a Port on a loopback UDP socket, with an ICE-TCP
// listener if tcp is set; the test's end closes it.
func newTestPort(t *testing.T, tcp bool) (*Port, net.Listener) {
	t.Helper()
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := NewPort(sock, nil)
	t.Cleanup(func() { _ = port.Close() })
	if !tcp {
		return port, nil
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := port.ServeTCP(ln); err != nil {
		t.Fatal(err)
	}
	return port, ln
}

// TestPortSharedByConnections: several pion peers on one shared UDP
// port each reach their own connection, by ufrag first and by address
// after, and media flows both ways on every one.
func TestPortSharedByConnections(t *testing.T) {
	port, _ := newTestPort(t, false)
	cert := testCertificate(t)
	const conns = 4
	nodes, peers := make([]*node, conns), make([]*peer, conns)
	for i := range conns {
		nodes[i], peers[i] = onPort(t, port, cert, i), newPeer(t)
		connect(t, nodes[i], peers[i], nil)
	}
	for _, n := range nodes {
		n.waitState(t, StateConnected)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	for i := range conns {
		wg.Go(func() { peers[i].sendAudio(stop) })
		wg.Go(func() { nodes[i].sendAudio(t, stop) })
	}
	for i := range conns {
		want := uint32(peers[i].sender.GetParameters().Encodings[0].SSRC)
		eventually.True(t, 10*time.Second, fmt.Sprintf("peer %d's audio at its connection only", i), func() bool {
			k, ssrcs := nodes[i].received()
			return k > 20 && ssrcs[want] && len(ssrcs) == 1
		})
		eventually.True(t, 10*time.Second, fmt.Sprintf("connection %d's track at its peer", i), func() bool { return peers[i].got.Load() > 20 })
	}
}

// TestPortOverICETCP: a pion peer that may use TCP alone reaches its
// connection through the port's passive ICE-TCP candidate, and media
// flows both ways in RFC 4571 frames.
func TestPortOverICETCP(t *testing.T) {
	port, ln := newTestPort(t, true)
	n := onPort(t, port, testCertificate(t), 0)
	n.tcp = ln.Addr().(*net.TCPAddr)
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	p := newPeerWith(t, se)
	connect(t, n, p, nil)
	n.waitState(t, StateConnected)
	if remote, _ := n.conn.Remote(); !port.isTCP(remote) {
		t.Fatalf("the selected pair %v is not the TCP connection", remote)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { p.sendAudio(stop) })
	wg.Go(func() { n.sendAudio(t, stop) })
	eventually.True(t, 10*time.Second, "the peer's audio over TCP", func() bool { k, _ := n.received(); return k > 20 })
	eventually.True(t, 10*time.Second, "the node's track over TCP", func() bool { return p.got.Load() > 20 })
}

// TestPortClosesTCPThatIsNotACheck: an ICE-TCP connection whose first
// frame is not a check that passes, or is longer than any datagram, is
// closed, and nothing is answered on it.
func TestPortClosesTCPThatIsNotACheck(t *testing.T) {
	port, ln := newTestPort(t, true)
	onPort(t, port, testCertificate(t), 0)
	frame := func(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }
	tests := []struct {
		name string
		send []byte
	}{
		{"media before a check", frame([]byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1})},
		{"a check for no connection", frame(bindingRequest(t, "nobody00:peer", testLocal.Pwd, true, true))},
		{"a check with the wrong password", frame(bindingRequest(t, "conn0000:peer", "another-password-24-chars", true, true))},
		{"a frame longer than a datagram", []byte{0xff, 0xff, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 64)
			if n, err := c.Read(buf); err == nil {
				t.Fatalf("the port answered %d bytes instead of closing", n)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the port kept the connection open")
			}
		})
	}
}

// TestPortChecksConsent: a connected connection whose remote side stops
// checking is failed by the port's own consent check, with no call from
// its owner.
func TestPortChecksConsent(t *testing.T) {
	port, _ := newTestPort(t, false)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	var out sent
	c := newTestConn(t, &out, clk)
	defer c.Close()
	if err := port.Route(testLocal.Ufrag, c); err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("192.0.2.7:50000")
	if err := c.Deliver(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true), from); err != nil {
		t.Fatal(err)
	}
	c.ready.Store(true) // as a finished handshake leaves it
	c.setState(StateConnected)
	clk.advance(FailedAfter)
	eventually.True(t, 5*time.Second, "the port's consent check failing the connection", func() bool { return c.State() == StateFailed })
}

// TestPortBoundsUncheckedTCPPerAddress: one address holds at most
// maxUncheckedPerIP ICE-TCP connections that have not passed a check;
// one more is closed at once, and once they go, it may connect again.
func TestPortBoundsUncheckedTCPPerAddress(t *testing.T) {
	port, ln := newTestPort(t, true)
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// open reports whether the port kept c open for 300 ms.
	open := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, os.ErrDeadlineExceeded)
	}
	var idle []net.Conn
	for range maxUncheckedPerIP {
		idle = append(idle, dial())
	}
	eventually.True(t, 5*time.Second, "the idle connections held", func() bool {
		port.mu.RLock()
		defer port.mu.RUnlock()
		return port.unchecked[netip.MustParseAddr("127.0.0.1")] == maxUncheckedPerIP
	})
	extra := dial()
	defer extra.Close()
	if open(extra) {
		t.Fatal("one more unchecked connection from the same address was kept")
	}
	for _, c := range idle {
		_ = c.Close()
	}
	eventually.True(t, 5*time.Second, "the closed connections forgotten", func() bool {
		port.mu.RLock()
		defer port.mu.RUnlock()
		return port.unchecked[netip.MustParseAddr("127.0.0.1")] == 0
	})
	again := dial()
	defer again.Close()
	if !open(again) {
		t.Fatal("a connection after the others went was refused")
	}
}

// TestPortAnswersFromItsOwnSocket: a connection routed on two ports (the
// node's sockets on two of the host's addresses) whose Send writes
// through the first has a check that arrives on the second answered from
// the second, the address the remote agent sent it to; an answer from the
// first is dropped by the remote agent. (Checks on a node's IPv6 address
// were once answered through its IPv4 socket.)
func TestPortAnswersFromItsOwnSocket(t *testing.T) {
	listen := func(ip string) (*Port, netip.AddrPort) {
		sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Skipf("listen on %s: %v", ip, err)
		}
		p := NewPort(sock, nil)
		t.Cleanup(func() { _ = p.Close() })
		return p, sock.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	first, _ := listen("127.0.0.1")
	second, secondAddr := listen("127.0.0.2")
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Local: testLocal, Certificate: cert, Send: first.Send, Handler: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []*Port{first, second} {
		if err := p.Route(testLocal.Ufrag, c); err != nil {
			t.Fatal(err)
		}
	}
	remote, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if _, err := remote.WriteToUDPAddrPort(bindingRequest(t, "nodeufrag:peer", testLocal.Pwd, true, true), secondAddr); err != nil {
		t.Fatal(err)
	}
	_ = remote.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := remote.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if from != secondAddr {
		t.Fatalf("answered from %v, want %v, where the check was sent", from, secondAddr)
	}
	checkResponse(t, buf[:n], remote.LocalAddr().(*net.UDPAddr).AddrPort())
	if !second.Routes(remote.LocalAddr().(*net.UDPAddr).AddrPort()) {
		t.Fatal("the checked address is not routed on the port the check came to")
	}
}
