package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/udppoll"
)

// routes returns the number of channels on the UDP listener's fast path.
func (tr *testRelay) routes() int {
	t := tr.ports[0].udp.channels
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.route)
}

func udpChannelData(number uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, number)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// expectNothing checks that no datagram reaches conn for a moment.
func expectNothing(t *testing.T, conn net.PacketConn, what string) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if n, _, err := conn.ReadFrom(buf); err == nil {
		t.Fatalf("%s: %d bytes arrived: %q", what, n, buf[:n])
	}
}

// expectPermissionPerAddress checks that permissions are per IP address
// (RFC 8656, 9): a datagram from other, another port of a permitted
// address without a channel, reaches the client conn through pion in a
// Data indication; one from an address without permission reaches nobody.
func expectPermissionPerAddress(t *testing.T, conn, other net.PacketConn, relayed net.Addr) {
	t.Helper()
	stranger, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	defer stranger.Close()
	if _, err := stranger.WriteTo([]byte("no permission"), relayed); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, conn, "datagram from an address without permission")
	if _, err := other.WriteTo([]byte("data indication"), relayed); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	ind := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err != nil || ind.Decode() != nil || ind.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Fatalf("client got % x (%v); want a Data indication", buf[:n], err)
	}
	if data, err := ind.Get(stun.AttrData); err != nil || string(data) != "data indication" {
		t.Fatalf("Data indication carries %q (%v)", data, err)
	}
}

// A raw client binds a channel, and ChannelData then takes the fast path
// both ways, byte for byte as pion would relay it; what the fast path does
// not own still reaches pion.
func TestChannelFastPath(t *testing.T) {
	for _, path := range readPaths {
		t.Run(path.name, func(t *testing.T) { channelFastPath(t, path.socketReads) })
	}
}

func channelFastPath(t *testing.T, socketReads bool) {
	tr := startRelay(t, func(c *Config) { c.socketReads = socketReads })
	raw, relayedAddr := allocateUDP(t, tr, "g_fast")
	conn := raw.conn
	peer, other := newPeer(t), newPeer(t)
	if code := errorCode(raw.request(stun.MethodChannelBind, channelNumber(0x4001), udpPeer(t, peer.LocalAddr()))); code != 0 {
		t.Fatalf("ChannelBind: error %d", code)
	}
	if n := tr.routes(); n != 1 {
		t.Fatalf("%d fast-path routes after ChannelBind, want 1", n)
	}

	buf := make([]byte, 2048)
	toPeer := []byte("client to peer over channel 0x4001")
	if _, err := conn.WriteTo(udpChannelData(0x4001, toPeer), tr.Addr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], toPeer) || from.String() != relayedAddr.String() {
		t.Fatalf("peer got %q from %v (%v); want %q from %s", buf[:n], from, err, toPeer, relayedAddr)
	}

	toClient := []byte("peer to client")
	if _, err := peer.WriteTo(toClient, relayedAddr); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err = conn.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], udpChannelData(0x4001, toClient)) {
		t.Fatalf("client got % x (%v); want ChannelData 0x4001 carrying %q", buf[:n], err, toClient)
	}
	// The counters move just after the datagram is sent.
	eventually.True(t, 5*time.Second, "one packet counted each way", func() bool {
		return testutil.ToFloat64(tr.metrics.toPeerPackets) == 1 && testutil.ToFloat64(tr.metrics.fromPeerPackets) == 1
	})

	// Malformed or unbound ChannelData goes to pion, which drops it; the
	// channel keeps working afterwards.
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"length beyond the datagram", append(binary.BigEndian.AppendUint16([]byte{0x40, 0x01}, 200), "short"...)},
		{"unbound channel", udpChannelData(0x4002, []byte("to nobody"))},
		{"reserved channel", udpChannelData(0x7fff, []byte("to nobody"))},
		{"header cut short", []byte{0x40, 0x01, 0x00}},
	} {
		if _, err := conn.WriteTo(tt.b, tr.Addr()); err != nil {
			t.Fatal(err)
		}
		expectNothing(t, peer, tt.name)
	}
	if _, err := conn.WriteTo(udpChannelData(0x4001, toPeer), tr.Addr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], toPeer) {
		t.Fatalf("after malformed ChannelData the peer got %q (%v)", buf[:n], err)
	}

	expectPermissionPerAddress(t, conn, other, relayedAddr)

	// Releasing the allocation removes its channel from the fast path.
	if code := errorCode(raw.request(stun.MethodRefresh, lifetime(0))); code != 0 {
		t.Fatalf("Refresh to 0: error %d", code)
	}
	eventually.True(t, 5*time.Second, "the channel to leave the fast path", func() bool { return tr.routes() == 0 })
	if _, err := peer.WriteTo(toClient, relayedAddr); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, conn, "datagram to a released allocation")
}

// The fast path holds the same limits as pion's path: a peer the policy
// refuses is never sent to, and the bandwidth cap applies to ChannelData.
func TestChannelFastPathKeepsPolicyAndCap(t *testing.T) {
	c, peer := benchRelayConn(t)
	c.sock = &fakeSocket{}
	c.out = newBucket(8*1600, time.Now) // one second holds 1600 bytes
	refused := netip.MustParseAddrPort("10.0.0.7:5004")
	if _, err := c.send([]byte("x"), refused, nil); !errors.Is(err, errPeerRefused) {
		t.Fatalf("send to %s: %v, want refusal", refused, err)
	}
	for range 4 {
		if _, err := c.send(make([]byte, 1000), peer.AddrPort(), nil); err != nil {
			t.Fatal(err)
		}
	}
	sent, drops := testutil.ToFloat64(c.m.toPeerPackets), testutil.ToFloat64(c.m.toPeerDrops)
	if sent != 1 || drops != 3 {
		t.Fatalf("under a 1600-byte cap: %v sent and %v dropped, want 1 and 3", sent, drops)
	}
	// The fast path checks the policy when a channel is bound, not per
	// datagram: a channel to a refused peer never enters it.
	table := newChannels(&fakeSocket{})
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	table.bind(c, client, refused, 0x4002, true)
	if table.forward(udpChannelData(0x4002, []byte("x")), client) {
		t.Fatalf("ChannelData to %s took the fast path", refused)
	}
	if sent := testutil.ToFloat64(c.m.toPeerPackets); sent != 1 {
		t.Fatalf("%v datagrams sent, want still 1", sent)
	}
}

// Neither direction of the fast path allocates per datagram.
func TestChannelFastPathAllocatesNothing(t *testing.T) {
	f := newFastPathFixture(t)
	c, peer, sock, table, client := f.c, f.peer, f.sock, f.table, f.client
	cd := udpChannelData(0x4001, make([]byte, 1200))
	buf := make([]byte, 1600)
	frame := make([]byte, udppoll.Headroom+1200)
	tests := []struct {
		name string
		op   func()
	}{
		{"client to peer", func() { table.forward(cd, client) }},
		{"peer to client", func() { _, _, _ = c.ReadFrom(buf) }},
		{"peer to client on an event loop", func() { c.deliver(frame, unmapped(peer.AddrPort()), nil) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(200, tt.op); n != 0 {
			t.Errorf("%s: %v allocations per datagram", tt.name, n)
		}
	}
	if sock.sent == 0 || testutil.ToFloat64(c.m.toPeerPackets) == 0 {
		t.Fatal("the fast path relayed nothing")
	}
}

// fastPathFixture is a relay socket with a permitted peer, bound on
// channel 0x4001 for client, over a fakeSocket.
type fastPathFixture struct {
	c      *relayConn
	peer   *net.UDPAddr
	sock   *fakeSocket
	table  *channels
	client netip.AddrPort
}

func newFastPathFixture(tb testing.TB) fastPathFixture {
	c, peer := benchRelayConn(tb)
	f := fastPathFixture{c: c, peer: peer, sock: &fakeSocket{from: peer.AddrPort()},
		client: netip.MustParseAddrPort("203.0.113.9:40000")}
	c.sock, c.reader = f.sock, f.sock
	f.table = newChannels(f.sock)
	f.table.bind(c, f.client, peer.AddrPort(), 0x4001, true)
	return f
}

var errFakeRead = errors.New("no more datagrams")

// fakeSocket sends nowhere and counts what it sent; its reads return a
// datagram from a peer and then an error, in turn, so that a relay
// socket's ReadFrom relays one datagram and returns.
type fakeSocket struct {
	from       netip.AddrPort
	reads      int
	sent, last int
}

func (s *fakeSocket) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	s.sent++
	s.last = len(b)
	return len(b), nil
}

func (s *fakeSocket) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	s.reads++
	if s.reads%2 == 0 {
		return 0, netip.AddrPort{}, errFakeRead
	}
	return 1200, s.from, nil
}

// BenchmarkChannelFastPath is the relay's own work per ChannelData packet
// on each side of the fast path, without the system calls.
func BenchmarkChannelFastPath(b *testing.B) {
	f := newFastPathFixture(b)
	c, peer, table, client := f.c, f.peer, f.table, f.client
	cd := udpChannelData(0x4001, make([]byte, 1200))
	buf := make([]byte, 1600)
	b.Run("ClientToPeer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			table.forward(cd, client)
		}
	})
	b.Run("PeerToClient", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _, _ = c.ReadFrom(buf)
		}
	})
	frame := make([]byte, udppoll.Headroom+1200)
	b.Run("PeerToClientOnLoop", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.deliver(frame, unmapped(peer.AddrPort()), nil)
		}
	})
}

// FuzzChannelForward feeds the fast path arbitrary datagrams: it relays
// exactly the payload of well-formed ChannelData on the bound channel and
// leaves everything else to pion.
func FuzzChannelForward(f *testing.F) {
	f.Add(udpChannelData(0x4001, []byte("media")))
	f.Add([]byte{0x40, 0x01, 0xff, 0xff, 1})
	f.Add([]byte{0x00, 0x01, 0x00, 0x00})
	f.Add(udpChannelData(0x4002, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		fx := newFastPathFixture(t)
		relayed := fx.table.forward(b, fx.client)
		want := len(b) >= 4 && b[0] == 0x40 && b[1] == 0x01 && 4+int(binary.BigEndian.Uint16(b[2:])) <= len(b)
		if relayed != want {
			t.Fatalf("forward(% x) = %v, want %v", b, relayed, want)
		}
		if relayed && fx.sock.last != int(binary.BigEndian.Uint16(b[2:])) {
			t.Fatalf("relayed %d bytes of % x", fx.sock.last, b)
		}
	})
}
