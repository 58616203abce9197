package relay

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

func TestBucketAdmitsBurstThenRate(t *testing.T) {
	clock := newFakeClock()
	b := newBucket(80_000, clock.Now) // 10 kB/s, burst 10 kB
	tests := []struct {
		name    string
		advance time.Duration
		size    int
		want    bool
	}{
		{"burst", 0, 10_000, true},
		{"burst spent", 0, 1, false},
		{"half a second refills half", 500 * time.Millisecond, 5_000, true},
		{"not more", 0, 1, false},
		{"refill stops at the burst", time.Hour, 10_000, true},
		{"over the burst", time.Hour, 10_001, false},
		{"a clock going back refills nothing", -time.Minute, 1, true},
	}
	for _, tt := range tests {
		clock.Advance(tt.advance)
		if got := b.allow(tt.size); got != tt.want {
			t.Fatalf("%s: allow(%d) = %v, want %v", tt.name, tt.size, got, tt.want)
		}
	}
	if !newBucket(8, clock.Now).allow(minBurst) {
		t.Fatal("a tiny cap refuses even one full-size datagram")
	}
}

func TestBandwidthCapDropsExcess(t *testing.T) {
	clock := newFakeClock()
	tr := startRelay(t, func(c *Config) {
		c.Now = clock.Now
		c.MaxBPS = 32_000 // 4000 bytes a second and of burst, each direction
	})
	user, pass := MintCredential(testSecret, "g_cap", time.Hour, clock.Now())
	relayed := dial(t, tr, "udp", user, pass).allocate(t)
	peer := newPeer(t)
	payload := bytes.Repeat([]byte("m"), 500)
	m := tr.metrics

	burst := func(send func(), packets, drops func() float64, receive func() int) (got int) {
		t.Helper()
		p0, d0 := packets(), drops()
		for range 20 {
			send()
		}
		eventually.True(t, 5*time.Second, "20 datagrams to reach the relay socket", func() bool { return packets()-p0+drops()-d0 == 20 })
		return receive()
	}
	count := func(c net.PacketConn) func() int {
		return func() int {
			n := 0
			buf := make([]byte, 1500)
			for {
				_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := c.ReadFrom(buf); err != nil {
					return n
				}
				n++
			}
		}
	}
	toPeer := func() {
		if _, err := relayed.WriteTo(payload, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if got := burst(toPeer, func() float64 { return testutil.ToFloat64(m.toPeerPackets) },
		func() float64 { return testutil.ToFloat64(m.toPeerDrops) }, count(peer)); got != 8 {
		t.Fatalf("the peer received %d of 20 datagrams of 500 bytes under a 4000-byte burst, want 8", got)
	}
	clock.Advance(500 * time.Millisecond)
	if got := burst(toPeer, func() float64 { return testutil.ToFloat64(m.toPeerPackets) },
		func() float64 { return testutil.ToFloat64(m.toPeerDrops) }, count(peer)); got != 4 {
		t.Fatalf("half a second later the peer received %d, want 4", got)
	}

	fromPeer := func() {
		if _, err := peer.WriteTo(payload, relayed.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if got := burst(fromPeer, func() float64 { return testutil.ToFloat64(m.fromPeerPackets) },
		func() float64 { return testutil.ToFloat64(m.fromPeerDrops) }, count(relayed)); got != 8 {
		t.Fatalf("the client received %d of 20 datagrams from the peer, want 8", got)
	}
	if d := testutil.ToFloat64(m.toPeerDrops) + testutil.ToFloat64(m.fromPeerDrops); d != 12+16+12 {
		t.Fatalf("%v drops counted, want 40", d)
	}
}

// Datagrams from an address without a permission are dropped before they
// can use the allocation's bandwidth, so a stranger who learns a relayed
// address cannot starve a consult.
func TestStrangersDoNotSpendTheCap(t *testing.T) {
	stranger, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	defer stranger.Close()
	clock := newFakeClock()
	tr := startRelay(t, func(c *Config) {
		c.Now = clock.Now
		c.MaxBPS = 32_000 // 4000 bytes of burst
	})
	user, pass := MintCredential(testSecret, "g_cap", time.Hour, clock.Now())
	relayed := dial(t, tr, "udp", user, pass).allocate(t)
	peer := newPeer(t)
	exchange(t, relayed, peer, []byte("open a permission"), []byte("ok")) // 2 bytes of the burst spent

	payload := bytes.Repeat([]byte("s"), 500)
	for range 20 {
		if _, err := stranger.WriteTo(payload, relayed.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for range 7 {
		if _, err := peer.WriteTo(payload, relayed.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	for i := range 7 {
		_ = relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := relayed.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d of the permitted peer: %v", i, err)
		}
		if from.String() != peer.LocalAddr().String() || n != 500 {
			t.Fatalf("got %d bytes from %s, want 500 from the peer", n, from)
		}
	}
	if p, d := testutil.ToFloat64(tr.metrics.fromPeerPackets), testutil.ToFloat64(tr.metrics.fromPeerDrops); p != 8 || d != 0 {
		t.Fatalf("from-peer packets %v, drops %v; want 8 and 0 (the stranger counts nowhere)", p, d)
	}
}

// The relay path added around pion/turn allocates nothing per datagram.
func TestRelayPathAllocatesNothing(t *testing.T) {
	c, peer := benchRelayConn(t)
	payload := make([]byte, 1200)
	buf := make([]byte, 1600)
	public := netip.MustParseAddr("198.51.100.7")
	gate := &inspector{}
	tests := []struct {
		name string
		op   func()
	}{
		{"WriteTo", func() { _, _ = c.WriteTo(payload, peer) }},
		{"ReadFrom", func() { _, _, _ = c.ReadFrom(buf) }},
		{"Check", func() { c.policy.Check(public) }},
		{"gate on ChannelData", func() { gate.inspect(buf[:204]) }},
	}
	buf[0] = 0x40
	for _, tt := range tests {
		if n := testing.AllocsPerRun(200, tt.op); n != 0 {
			t.Errorf("%s: %v allocations per datagram", tt.name, n)
		}
	}
}

// benchRelayConn is a relay socket with a cap over a socket that discards
// writes and reads one datagram from a permitted peer forever.
func benchRelayConn(tb testing.TB) (*relayConn, *net.UDPAddr) {
	peer := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 5004}
	r := &relaySockets{policy: &PeerPolicy{}, metrics: newMetrics(), maxBPS: 1 << 50, now: time.Now,
		refused: func(string) {}, byAddr: map[net.Addr]*relayConn{}, streams: map[netip.AddrPort]*streamCap{}}
	c := &relayConn{PacketConn: loopConn{from: peer}, owner: r, policy: r.policy, m: r.metrics, refused: r.refused,
		in: newBucket(r.maxBPS, time.Now), out: newBucket(r.maxBPS, time.Now)}
	c.permitted.Store(&[]netip.Addr{})
	c.channels.Store(&[]peerChannel{})
	c.setPermitted(netip.MustParseAddr("198.51.100.7"), true)
	return c, peer
}

type loopConn struct {
	net.PacketConn
	from net.Addr
}

func (c loopConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }
func (c loopConn) ReadFrom(p []byte) (int, net.Addr, error)  { return 1200, c.from, nil }

func BenchmarkRelayConnWriteTo(b *testing.B) {
	c, peer := benchRelayConn(b)
	payload := make([]byte, 1200)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := c.WriteTo(payload, peer); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRelayConnReadFrom(b *testing.B) {
	c, _ := benchRelayConn(b)
	buf := make([]byte, 1600)
	b.ReportAllocs()
	b.SetBytes(1200)
	for b.Loop() {
		if _, _, err := c.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBucketAllow(b *testing.B) {
	bk := newBucket(1<<50, time.Now)
	b.ReportAllocs()
	for b.Loop() {
		bk.allow(1200)
	}
}

func BenchmarkGatePassesChannelData(b *testing.B) {
	in := &inspector{}
	pkt := make([]byte, 204)
	pkt[0] = 0x40
	b.ReportAllocs()
	for b.Loop() {
		if in.inspect(pkt) != nil {
			b.Fatal("ChannelData answered")
		}
	}
}
