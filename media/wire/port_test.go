package wire

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

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

// TestPortSharedByConnections: several pion peers on one shared UDP
// port each reach their own connection, by ufrag first and by address
// after, and media flows both ways on every one.
func TestPortSharedByConnections(t *testing.T) {
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := NewPort(sock, nil)
	t.Cleanup(func() { _ = port.Close() })
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
