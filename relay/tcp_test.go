package relay

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
)

// rawTCP opens a raw client over a new TCP connection to the relay, with
// the credential of user; it returns the client and the connection.
func rawTCP(t *testing.T, tr *testRelay, user, pass string) (*rawClient, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return newRawClient(t, turn.NewSTUNConn(c), tr.Addr(), user, pass), c
}

func connectionID(t *testing.T, m *stun.Message) stun.Setter {
	t.Helper()
	v, err := m.Get(stun.AttrConnectionID)
	if err != nil {
		t.Fatalf("no CONNECTION-ID in %v (error %d)", m, errorCode(m))
	}
	return stun.RawAttribute{Type: stun.AttrConnectionID, Value: append([]byte(nil), v...)}
}

// bindData opens a data connection for connection id and binds it (RFC
// 6062, 5.4); it returns the raw connection, now carrying the peer's bytes.
func bindData(t *testing.T, tr *testRelay, user, pass string, id stun.Setter) net.Conn {
	t.Helper()
	raw, c := rawTCP(t, tr, user, pass)
	if code := errorCode(raw.request(stun.MethodConnectionBind, id)); code != 0 {
		t.Fatalf("ConnectionBind: error %d", code)
	}
	return c
}

// pipe checks that bytes go both ways between a client's data connection
// and a peer's connection.
func pipe(t *testing.T, data, peer net.Conn) {
	t.Helper()
	for _, dir := range []struct {
		name     string
		from, to net.Conn
		msg      []byte
	}{{"client to peer", data, peer, []byte("hello peer over TCP")}, {"peer to client", peer, data, bytes.Repeat([]byte("x"), 3000)}} {
		if _, err := dir.from.Write(dir.msg); err != nil {
			t.Fatalf("%s: %v", dir.name, err)
		}
		got := make([]byte, len(dir.msg))
		_ = dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(dir.to, got); err != nil || !bytes.Equal(got, dir.msg) {
			t.Fatalf("%s: received %d bytes, %v", dir.name, len(got), err)
		}
	}
}

// RFC 6062: a TCP allocation over a TCP connection, to a peer the client
// connects to (Connect) and from a peer that connects to the relayed
// address (ConnectionAttempt), never a UDP relay when TCP was asked.
func TestTCPAllocations(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.noAllocationTimeout = 500 * time.Millisecond })
	user, pass := mint(testSecret, "g_tcp")

	t.Run("asked over UDP", func(t *testing.T) {
		raw := rawUDP(t, tr, "g_tcp_udp")
		if code := errorCode(raw.request(stun.MethodAllocate, requestedTCP)); code != 400 {
			t.Fatalf("TCP allocation over UDP: code %d, want 400", code)
		}
	})
	t.Run("unknown transport", func(t *testing.T) {
		raw, _ := rawTCP(t, tr, user, pass)
		other := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{132, 0, 0, 0}} // SCTP
		if code := errorCode(raw.request(stun.MethodAllocate, other)); code != 442 {
			t.Fatalf("SCTP allocation: code %d, want 442", code)
		}
	})

	ctrl, _ := rawTCP(t, tr, user, pass)
	resp := ctrl.request(stun.MethodAllocate, requestedTCP)
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("TCP allocation: error %d", errorCode(resp))
	}

	t.Run("Connect", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				accepted <- c
			}
		}()
		resp := ctrl.request(stun.MethodConnect, udpPeer(t, net.UDPAddrFromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())))
		id := connectionID(t, resp)
		var peer net.Conn
		select {
		case peer = <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("the relay did not connect to the peer")
		}
		defer peer.Close()
		if got := peer.RemoteAddr().(*net.TCPAddr).Port; got != relayed.Port {
			t.Fatalf("the peer saw a connection from port %d, the relayed port is %d", got, relayed.Port)
		}
		data := bindData(t, tr, user, pass, id)
		pipe(t, data, peer)
		// A data connection holds no allocation, and must outlive the
		// deadline of connections without one.
		// The deadline is a socket deadline on the wall clock, so the time
		// must really pass.
		time.Sleep(700 * time.Millisecond)
		pipe(t, data, peer)
	})

	t.Run("Connect to a refused peer", func(t *testing.T) {
		before := tr.counter(tr.metrics.peerRefusals, ClassPrivate)
		if code := errorCode(ctrl.request(stun.MethodConnect, xorPeer{ip: netip.MustParseAddr("10.0.0.1"), port: 80})); code != 403 {
			t.Fatalf("Connect to 10.0.0.1: code %d, want 403", code)
		}
		if tr.counter(tr.metrics.peerRefusals, ClassPrivate)-before != 1 {
			t.Fatal("refusal not counted")
		}
	})

	t.Run("ConnectionAttempt", func(t *testing.T) {
		if code := errorCode(ctrl.request(stun.MethodCreatePermission, xorPeer{ip: netip.MustParseAddr("127.0.0.1"), port: 1})); code != 0 {
			t.Fatalf("CreatePermission: error %d", code)
		}
		peer, err := net.Dial("tcp4", (&net.TCPAddr{IP: relayed.IP, Port: relayed.Port}).String())
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		attempt := readIndication(t, ctrl, stun.MethodConnectionAttempt)
		data := bindData(t, tr, user, pass, connectionID(t, attempt))
		pipe(t, data, peer)
	})
}

// readIndication waits for an indication of method on c's connection.
func readIndication(t *testing.T, c *rawClient, method stun.Method) *stun.Message {
	t.Helper()
	buf := make([]byte, 1600)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no %v indication: %v", method, err)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() == nil && m.Type == stun.NewType(method, stun.ClassIndication) {
			return m
		}
	}
}

// A peer the policy refuses cannot reach a client through a TCP
// allocation's listener, even with a permission for its address: the
// relay closes its connection before telling the client.
func TestTCPAllocationRefusesPeersByPolicy(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.Policy = PeerPolicy{} })
	user, pass := mint(testSecret, "g_tcp_policy")
	ctrl, _ := rawTCP(t, tr, user, pass)
	resp := ctrl.request(stun.MethodAllocate, requestedTCP)
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("TCP allocation: error %d", errorCode(resp))
	}
	if code := errorCode(ctrl.request(stun.MethodCreatePermission, xorPeer{ip: netip.MustParseAddr("127.0.0.1"), port: 1})); code != 403 {
		t.Fatalf("CreatePermission for loopback: code %d, want 403", code)
	}
	before := tr.counter(tr.metrics.peerRefusals, ClassLoopback)
	peer, err := net.Dial("tcp4", (&net.TCPAddr{IP: relayed.IP, Port: relayed.Port}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := peer.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a refused peer's connection stayed open (read %d bytes)", n)
	}
	if tr.counter(tr.metrics.peerRefusals, ClassLoopback)-before != 1 {
		t.Fatal("the refused peer was not counted")
	}
}

// After pion accepts a ConnectionBind the connection carries a peer's
// bytes, which the gate must pass on as they are (they are no TURN frames);
// until then, and after a refused bind, it frames as always.
func TestGatedStreamTurnsRawAfterConnectionBind(t *testing.T) {
	bind := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodConnectionBind, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrConnectionID, Value: []byte{1, 2, 3, 4}})
	peerBytes := []byte("GET / HTTP/1.1\r\nHost: peer\r\n\r\n")
	tests := []struct {
		name    string
		answer  stun.MessageClass
		wantRaw bool
	}{
		{"bound", stun.ClassSuccessResponse, true},
		{"refused", stun.ClassErrorResponse, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := gatedStream(t, append(append([]byte(nil), bind.Raw...), peerBytes...), 7)
			buf := make([]byte, 2048)
			n, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], bind.Raw) {
				t.Fatalf("first read %d bytes, %v; want the ConnectionBind", n, err)
			}
			answer := stun.MustBuild(stun.NewTransactionIDSetter(bind.TransactionID), stun.NewType(stun.MethodConnectionBind, tt.answer))
			if _, err := c.Write(answer.Raw); err != nil {
				t.Fatal(err)
			}
			var got []byte
			for len(got) < len(peerBytes) {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if raw := bytes.Equal(got, peerBytes); raw != tt.wantRaw {
				t.Fatalf("after a %v answer the gate passed %q", tt.answer, got)
			}
		})
	}
}
