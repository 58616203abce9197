package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/openconsult/openconsult/internal/eventually"
)

// serverGoroutines returns the stacks of goroutines running the relay's
// side of pion/turn or the relay's own socket wrappers.
func serverGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, frame := range []string{"turn/v5.(*Server)", "turn/v5.NewServer", "internal/allocation.", "internal/server.",
			"relay.(*gatedConn)", "relay.(*gatedListener)", "relay.(*gatedPacketConn)", "relay.(*relayConn)"} {
			if strings.Contains(g, frame) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

func TestCloseEndsConnectionsAllocationsAndGoroutines(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.TLSListen, c.TLS = "127.0.0.1:0", selfSigned(t) })
	user, pass := mint(testSecret, "g_close")
	clients := map[string]*testClient{}
	for _, network := range []string{"udp", "tcp", "tls"} {
		clients[network] = dial(t, tr, network, user, pass)
		exchange(t, clients[network].allocate(t), newPeer(t), []byte("before close"), []byte("relayed before close"))
	}
	// A TCP allocation (RFC 6062) with a peer relayed through a data
	// connection, and a second peer waiting for its ConnectionBind.
	peers := tcpAllocationWithPeers(t, tr, user, pass)
	// A connection that never says anything is closed too.
	idle, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if tr.Allocations() != 4 {
		t.Fatalf("%d allocations, want 4", tr.Allocations())
	}

	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := tr.Allocations(); n != 0 {
		t.Fatalf("%d allocations after Close", n)
	}
	// pion's goroutines end as the sockets Close closed report it; one
	// may still be returning when Close does.
	eventually.True(t, 2*time.Second, "pion's goroutines to end", func() bool { return len(serverGoroutines()) == 0 })
	for name, c := range map[string]net.Conn{"idle connection": idle, "relayed peer": peers[0], "waiting peer": peers[1]} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Fatalf("%s after Close: %v, want it closed", name, err)
		}
	}
	if mfs, err := tr.reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("%d metric families still registered after Close (%v)", len(mfs), err)
	}

	// The same registry takes a new relay.
	again := startRelay(t, func(c *Config) { c.Metrics = tr.reg })
	dial(t, again, "udp", user, pass).allocate(t)
}

// tcpAllocationWithPeers opens a TCP allocation over TCP with one peer
// bound to a data connection and relaying, and another whose connection
// waits for the client's ConnectionBind.
// It returns the two peers' connections.
func tcpAllocationWithPeers(t *testing.T, tr *testRelay, user, pass string) []net.Conn {
	t.Helper()
	ctrl, _ := rawTCP(t, tr, user, pass)
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(ctrl.request(stun.MethodAllocate, requestedTCP), stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("TCP allocation: %v", err)
	}
	if code := errorCode(ctrl.request(stun.MethodCreatePermission, xorPeer{ip: loopback.Addr(), port: 1})); code != 0 {
		t.Fatalf("CreatePermission: error %d", code)
	}
	to := (&net.TCPAddr{IP: relayed.IP, Port: relayed.Port}).String()
	peer, err := net.Dial("tcp4", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	data := bindData(t, tr, user, pass, connectionID(t, readIndication(t, ctrl, stun.MethodConnectionAttempt)))
	pipe(t, data, peer)
	waiting, err := net.Dial("tcp4", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiting.Close() })
	readIndication(t, ctrl, stun.MethodConnectionAttempt)
	return []net.Conn{peer, waiting}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestSecondRelayOnOneRegistryIsRefused(t *testing.T) {
	tr := startRelay(t, nil)
	cfg := DefaultConfig()
	cfg.Listen, cfg.RelayBindIP, cfg.Secrets, cfg.Metrics = "127.0.0.1:0", tr.cfg.RelayBindIP, [][]byte{testSecret}, tr.reg
	if s, err := New(cfg); err == nil {
		s.Close()
		t.Fatal("a second relay registered the same metrics")
	}
	if mfs, _ := tr.reg.Gather(); len(mfs) == 0 {
		t.Fatal("the failed New unregistered the first relay's metrics")
	}
}

func TestSilentConnectionsAreClosed(t *testing.T) {
	tr := startRelay(t, func(c *Config) {
		c.TLSListen, c.TLS = "127.0.0.1:0", selfSigned(t)
		c.firstFrameTimeout = 200 * time.Millisecond
	})
	for _, addr := range []net.Addr{tr.Addr(), tr.TLSAddr()} {
		conn, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 4*time.Second {
			t.Fatalf("silent connection to %s: %v after %v, want it closed by the relay", addr, err, time.Since(start))
		}
	}
	// A connection that speaks in time stays open past the deadline.
	user, pass := mint(testSecret, "g_slow")
	cl := dial(t, tr, "tls", user, pass)
	relayed := cl.allocate(t)
	time.Sleep(400 * time.Millisecond)
	exchange(t, relayed, newPeer(t), []byte("still here"), []byte("still relayed"))
}

// pion/turn's allocation manager stops closing its allocations at the
// first whose Close fails; Close still ends every allocation, at once.
func TestCloseEndsAllocationsWhoseCloseFails(t *testing.T) {
	for _, path := range readPaths {
		t.Run(path.name, func(t *testing.T) {
			tr := startRelay(t, func(c *Config) { c.socketReads, c.relayCloseFails = path.socketReads, true })
			user, pass := mint(testSecret, "g_close_fails")
			for range 3 {
				dial(t, tr, "udp", user, pass).allocate(t)
			}
			for range 2 {
				ctrl, _ := rawTCP(t, tr, user, pass)
				if code := errorCode(ctrl.request(stun.MethodAllocate, requestedTCP)); code != 0 {
					t.Fatalf("TCP allocation: error %d", code)
				}
			}
			if n := tr.Allocations(); n != 5 {
				t.Fatalf("%d allocations, want 5", n)
			}
			start := time.Now()
			if err := tr.Close(); err != nil {
				t.Fatalf("Close after %v: %v", time.Since(start), err)
			}
			if n := tr.Allocations(); n != 0 {
				t.Fatalf("%d allocations after Close", n)
			}
			// Every socket is closed; pion's goroutine of an allocation
			// that its client's connection ended may still be returning
			// from its Accept.
			eventually.True(t, 2*time.Second, "pion's goroutines to end", func() bool { return len(serverGoroutines()) == 0 })
		})
	}
}
