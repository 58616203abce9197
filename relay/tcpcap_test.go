package relay

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A capped TCP connection with a peer paces rather than drops: every byte
// arrives, in the time the cap allows after its one-second burst, in each
// direction, for the per-allocation and for the relay-wide cap.
func TestTCPConnectionsArePacedByTheCaps(t *testing.T) {
	const bps = 80_000 // 10 000 bytes a second
	const size = 40_000
	tests := []struct {
		name       string
		perAlloc   bool
		total      bool
		dir        direction
		minElapsed time.Duration
	}{
		// 10 000 bytes of burst, then 30 000 at 10 000 a second.
		{"per allocation, from the peer", true, false, fromPeer, 3 * time.Second},
		{"per allocation, to the peer", true, false, toPeer, 3 * time.Second},
		{"relay-wide, from the peer", false, true, fromPeer, 3 * time.Second},
		{"relay-wide, to the peer", false, true, toPeer, 3 * time.Second},
		{"no cap", false, false, fromPeer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &relaySockets{metrics: newMetrics(), now: time.Now, maxBPS: bps}
				var cap *streamCap
				if tt.perAlloc {
					cap = &streamCap{in: newBucket(bps, time.Now), out: newBucket(bps, time.Now)}
				}
				if tt.total {
					s.total = newSharedBucket(bps, time.Now)
				}
				relaySide, peerSide := net.Pipe()
				c := newPeerConn(relaySide, s, cap)
				defer c.Close()
				defer peerSide.Close()
				data := bytes.Repeat([]byte("0123456789"), size/10)
				start := time.Now()
				got := make([]byte, size)
				var err error
				done := make(chan struct{})
				if tt.dir == fromPeer {
					go func() { defer close(done); peerSide.Write(data) }()
					_, err = io.ReadFull(c, got)
				} else {
					go func() { defer close(done); c.Write(data) }()
					_, err = io.ReadFull(peerSide, got)
				}
				elapsed := time.Since(start)
				<-done
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("received %d bytes, %v: the stream lost or changed data", len(got), err)
				}
				if elapsed < tt.minElapsed || (tt.minElapsed == 0 && elapsed != 0) {
					t.Fatalf("%d bytes took %s on the bubble's clock, want at least %s", size, elapsed, tt.minElapsed)
				}
				if tt.minElapsed > 0 && elapsed > tt.minElapsed+time.Second {
					t.Fatalf("%d bytes took %s on the bubble's clock: paced too slowly", size, elapsed)
				}
				t.Logf("%d bytes in %s, paced %.2f s", size, elapsed, testutil.ToFloat64(s.metrics.streamPaced))
			})
		})
	}
}

// Close cuts a paced wait short.
func TestPacedConnectionCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &relaySockets{metrics: newMetrics(), now: time.Now}
		s.total = newSharedBucket(8_000, time.Now) // 1000 bytes a second
		relaySide, peerSide := net.Pipe()
		defer peerSide.Close()
		go io.Copy(io.Discard, peerSide)
		c := newPeerConn(relaySide, s, nil)
		errs := make(chan error, 1)
		go func() { _, err := c.Write(make([]byte, 100_000)); errs <- err }()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		c.Close()
		if err := <-errs; err == nil {
			t.Fatal("a write waiting for the cap went on after Close")
		}
	})
}

// Through the relay: a TCP allocation with a per-allocation cap relays
// every byte from its peer, and its connections wait for the cap.
func TestTCPAllocationIsCapped(t *testing.T) {
	tr := startRelay(t, func(c *Config) { c.MaxBPS = 160_000 }) // 20 000 bytes a second
	user, pass := mint(testSecret, "g_tcpcap")
	ctrl, _ := rawTCP(t, tr, user, pass)
	resp := ctrl.request(stun.MethodAllocate, requestedTCP)
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		t.Fatalf("TCP allocation: error %d", errorCode(resp))
	}
	if code := errorCode(ctrl.request(stun.MethodCreatePermission, xorPeer{ip: netip.MustParseAddr("127.0.0.1"), port: 1})); code != 0 {
		t.Fatalf("CreatePermission: error %d", code)
	}
	peer, err := net.Dial("tcp4", (&net.TCPAddr{IP: relayed.IP, Port: relayed.Port}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	data := bindData(t, tr, user, pass, connectionID(t, readIndication(t, ctrl, stun.MethodConnectionAttempt)))
	msg := bytes.Repeat([]byte("paced "), 5_000) // 30 000 bytes: over the one-second burst
	go peer.Write(msg)
	got := make([]byte, len(msg))
	_ = data.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(data, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("received %d bytes, %v", len(got), err)
	}
	paced := testutil.ToFloat64(tr.metrics.streamPaced)
	if paced <= 0 {
		t.Fatalf("turn_tcp_paced_seconds_total = %v: the cap did not apply to the peer's connection (ConnectionAttempt)", paced)
	}

	// A connection the relay makes to a peer (Connect) shares the cap.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	id := connectionID(t, ctrl.request(stun.MethodConnect, udpPeer(t, net.UDPAddrFromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort()))))
	var peer2 net.Conn
	select {
	case peer2 = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not connect to the peer")
	}
	defer peer2.Close()
	data2 := bindData(t, tr, user, pass, id)
	go peer2.Write(msg)
	_ = data2.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(data2, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("through Connect: received %d bytes, %v", len(got), err)
	}
	if after := testutil.ToFloat64(tr.metrics.streamPaced); after <= paced {
		t.Fatalf("turn_tcp_paced_seconds_total stayed at %v: the cap did not apply to the connection the relay made (Connect)", after)
	}
}
