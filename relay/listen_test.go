package relay

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

// Every listen address relays, over UDP (the channel fast path of its
// own socket) and TCP, such as an IPv4 and an IPv6 address or 3478 and
// 443 side by side.
func TestSeveralListenAddresses(t *testing.T) {
	more := []string{"127.0.0.1:0"}
	if ipv6Loopback(t) {
		more = append(more, "[::1]:0")
	}
	tr := startRelay(t, func(c *Config) { c.MoreListen = more })
	addrs := tr.Addrs()
	if len(addrs) != 1+len(more) {
		t.Fatalf("%d listen addresses, want %d", len(addrs), 1+len(more))
	}
	for _, addr := range addrs {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(addr.String()+"/"+network, func(t *testing.T) {
				raw := rawAt(t, addr, network, "g_listen")
				resp := raw.request(stun.MethodAllocate, requestedUDP)
				if code := errorCode(resp); code != 0 {
					t.Fatalf("Allocate: error %d", code)
				}
				peer := newPeer(t)
				if code := errorCode(raw.request(stun.MethodChannelBind, channelNumber(0x4001), udpPeer(t, peer.LocalAddr()))); code != 0 {
					t.Fatalf("ChannelBind: error %d", code)
				}
				// 20 bytes: over TCP, ChannelData is padded to four.
				msg := udpChannelData(0x4001, []byte("via this listener!!!"))
				if _, err := raw.conn.WriteTo(msg, addr); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 1500)
				_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := peer.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "via this listener!!!" {
					t.Fatalf("peer received %q, %v", buf[:n], err)
				}
				if _, err := peer.WriteTo([]byte("and back"), from); err != nil {
					t.Fatal(err)
				}
				_ = raw.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, _, err = raw.conn.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], udpChannelData(0x4001, []byte("and back"))) {
					t.Fatalf("client received %q, %v", buf[:n], err)
				}
			})
		}
	}
}

// rawAt opens a raw client to one listen address over UDP or TCP.
func rawAt(t *testing.T, server net.Addr, network, id string) *rawClient {
	t.Helper()
	user, pass := mint(testSecret, id)
	ap := server.(*net.UDPAddr).AddrPort()
	if network == "tcp" {
		c, err := net.Dial("tcp", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		return newRawClient(t, turn.NewSTUNConn(c), server, user, pass)
	}
	local := "127.0.0.1:0"
	if ap.Addr().Is6() {
		local = "[::1]:0"
	}
	c, err := net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	return newRawClient(t, c, server, user, pass)
}

func TestListenAddressesValidated(t *testing.T) {
	tests := []struct {
		name string
		more []string
	}{
		{"malformed", []string{"localhost"}},
		{"twice", []string{"127.0.0.1:3478", "127.0.0.1:3478"}},
		{"same as Listen", []string{":3478"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.RelayBindIP, c.Secrets, c.MoreListen = netip.MustParseAddr("192.0.2.1"), [][]byte{testSecret}, tt.more
			if err := c.Validate(); err == nil {
				t.Fatalf("MoreListen %q accepted", tt.more)
			}
		})
	}
}

func TestSharedBucketAdmitsBurstThenRate(t *testing.T) {
	clock := newFakeClock()
	b := newSharedBucket(80_000, clock.Now) // 10 kB/s, burst 10 kB
	tests := []struct {
		name    string
		advance time.Duration
		dir     direction
		size    int
		want    bool
	}{
		{"burst", 0, toPeer, 10_000, true},
		{"burst spent", 0, toPeer, 1, false},
		{"the other direction has its own", 0, fromPeer, 10_000, true},
		{"half a second refills half", 500 * time.Millisecond, toPeer, 5_000, true},
		{"not more", 0, toPeer, 1, false},
		{"tiny gaps add up", time.Millisecond, toPeer, 10, true},
		{"refill stops at the burst", time.Hour, toPeer, 10_000, true},
		{"over the burst", time.Hour, toPeer, 10_001, false},
	}
	for _, tt := range tests {
		clock.Advance(tt.advance)
		if got := b.allow(tt.dir, tt.size); got != tt.want {
			t.Fatalf("%s: allow(%d) = %v, want %v", tt.name, tt.size, got, tt.want)
		}
	}
	if !newSharedBucket(8, clock.Now).allow(toPeer, minBurst) {
		t.Fatal("a tiny cap refuses even one full-size datagram")
	}
}

// The relay-wide cap holds for all allocations together, each of them
// under its own cap.
func TestTotalBandwidthCap(t *testing.T) {
	clock := newFakeClock()
	tr := startRelay(t, func(c *Config) {
		c.Now = clock.Now
		c.MaxBPS = 80_000      // 10,000 bytes each: never reached here
		c.MaxTotalBPS = 32_000 // 4000 bytes for all of them
	})
	peer := newPeer(t)
	payload := bytes.Repeat([]byte("m"), 500)
	var relayed []net.PacketConn
	for _, id := range []string{"g_total_a", "g_total_b"} {
		user, pass := MintCredential(testSecret, id, time.Hour, clock.Now())
		relayed = append(relayed, dial(t, tr, "udp", user, pass).allocate(t))
	}
	for range 10 {
		for _, r := range relayed {
			if _, err := r.WriteTo(payload, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := tr.metrics
	eventually.True(t, 5*time.Second, "20 datagrams to reach the relay sockets", func() bool {
		return testutil.ToFloat64(m.toPeerPackets)+testutil.ToFloat64(m.toPeerTotalDrops) == 20
	})
	if got := testutil.ToFloat64(m.toPeerPackets); got != 8 {
		t.Fatalf("%v of 20 datagrams of 500 bytes relayed under a relay-wide burst of 4000 bytes, want 8", got)
	}
	if d := testutil.ToFloat64(m.toPeerDrops); d != 0 {
		t.Fatalf("%v dropped by the per-allocation cap, want 0", d)
	}
	if d := testutil.ToFloat64(m.totalDrops.WithLabelValues("to_peer")); d != 12 {
		t.Fatalf("turn_total_bandwidth_drops_total{to_peer} = %v, want 12", d)
	}
}

func TestNegativeTotalCapRefused(t *testing.T) {
	c := DefaultConfig()
	c.RelayBindIP, c.Secrets, c.MaxTotalBPS = netip.MustParseAddr("192.0.2.1"), [][]byte{testSecret}, -1
	if err := c.Validate(); err == nil {
		t.Fatal("a negative relay-wide cap was accepted")
	}
}

// BenchmarkSharedBucketAllow is the relay-wide cap's work per datagram,
// from every loop at once.
func BenchmarkSharedBucketAllow(b *testing.B) {
	sb := newSharedBucket(1<<40, time.Now)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sb.allow(toPeer, 1200)
		}
	})
}
