//go:build linux

package media

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// readN reads n datagrams on c, each a (writer, index) pair, and checks
// that each writer's indexes arrive in order.
func readN(t *testing.T, c *net.UDPConn, n int) {
	t.Helper()
	buf := make([]byte, 1500)
	next := map[uint32]uint32{}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: datagram %d of %d: %v", c.LocalAddr(), i, n, err)
		}
		if k < 8 {
			t.Fatalf("a datagram of %d bytes", k)
		}
		w, seq := binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:])
		if seq != next[w] {
			t.Fatalf("%s: writer %d: datagram %d after %d", c.LocalAddr(), w, seq, int(next[w])-1)
		}
		next[w]++
	}
}

func datagram(w, seq uint32, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, w)
	binary.BigEndian.PutUint32(p[4:], seq)
	return p
}

func countsSince(b *batchConn, before UDPWrites) UDPWrites {
	now := b.writeCounts()
	return UDPWrites{Single: now.Single - before.Single, Batches: now.Batches - before.Batches, Batched: now.Batched - before.Batched}
}

// TestBatchConnSendsAHeldBurstInOneCall: what is written to a held
// address leaves at the release, in order and in as many sendmmsg calls
// as it has full batches; writes to other addresses go out meanwhile.
func TestBatchConnSendsAHeldBurstInOneCall(t *testing.T) {
	for _, tt := range batchCases {
		for _, n := range []int{1, 12, batchSize, 3*batchSize + 5} {
			t.Run(fmt.Sprintf("%s, %d datagrams", tt.name, n), func(t *testing.T) {
				b, peer, _ := batchPair(t, tt.listen, tt.peerNet, tt.peerAddr)
				other, err := net.ListenUDP(tt.peerNet, &net.UDPAddr{IP: net.ParseIP(tt.peerAddr)})
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
				if tt.listen == ":0" {
					// A dual-stack socket: the writes name the IPv4-mapped form.
					dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
				}
				before := b.writeCounts()
				if !b.hold(peer.LocalAddr().(*net.UDPAddr).AddrPort()) {
					t.Fatal("hold refused on a free address")
				}
				if b.hold(dst) {
					t.Fatal("an address held twice")
				}
				for i := range n {
					if _, err := b.WriteToAddrPort(datagram(1, uint32(i), 1200), dst); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := b.WriteToAddrPort(datagram(2, 0, 100), other.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
					t.Fatal(err)
				}
				readN(t, other, 1) // not held
				b.release(dst)
				readN(t, peer, n)
				got := countsSince(b, before)
				want := UDPWrites{Single: 1, Batches: uint64((n + batchSize - 1) / batchSize), Batched: uint64(n)}
				if got != want {
					t.Errorf("%d held datagrams: %+v system calls, want %+v", n, got, want)
				}
				if len(b.w.held) != 0 || b.w.busy {
					t.Errorf("after the release: %d held, busy %v", len(b.w.held), b.w.busy)
				}
			})
		}
	}
}

// TestBatchConnSendsABurstWithTheQueue: a burst released while another
// writer sends joins that writer's queue, and both leave in one sendmmsg,
// the queue first.
func TestBatchConnSendsABurstWithTheQueue(t *testing.T) {
	b, peer, _ := batchPair(t, "127.0.0.1:0", "udp4", "127.0.0.1")
	dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	before := b.writeCounts()
	b.w.mu.Lock()
	b.w.busy = true // as if another writer were in the middle of a send
	b.w.mu.Unlock()
	for i := range 3 {
		if _, err := b.WriteToAddrPort(datagram(1, uint32(i), 300), dst); err != nil {
			t.Fatal(err)
		}
	}
	b.hold(dst)
	for i := 3; i < 10; i++ {
		if _, err := b.WriteToAddrPort(datagram(1, uint32(i), 300), dst); err != nil {
			t.Fatal(err)
		}
	}
	b.release(dst)
	if len(b.w.queue) != 10 {
		t.Fatalf("%d datagrams queued behind the sending writer, want 10", len(b.w.queue))
	}
	b.drain() // what the sending writer does once its own send returns
	readN(t, peer, 10)
	if got, want := countsSince(b, before), (UDPWrites{Batches: 1, Batched: 10}); got != want {
		t.Errorf("%+v system calls, want %+v", got, want)
	}
}

// TestBatchConnHoldsUnderConcurrentWriters: writers that hold their own
// address, write a burst and release it, while others write to the same
// addresses without holding, lose nothing and keep each writer's order.
func TestBatchConnHoldsUnderConcurrentWriters(t *testing.T) {
	for _, tt := range batchCases {
		t.Run(tt.name, func(t *testing.T) {
			b, _, _ := batchPair(t, tt.listen, tt.peerNet, tt.peerAddr)
			const peers, bursts, each = 4, 40, 20 // one holding writer and one plain writer per peer
			var dsts []netip.AddrPort
			var wg sync.WaitGroup
			for range peers {
				c, err := net.ListenUDP(tt.peerNet, &net.UDPAddr{IP: net.ParseIP(tt.peerAddr)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetReadBuffer(4 << 20)
				dsts = append(dsts, c.LocalAddr().(*net.UDPAddr).AddrPort())
				wg.Go(func() { readN(t, c, 2*bursts*each) })
			}
			var writers sync.WaitGroup
			for i, dst := range dsts {
				writers.Go(func() {
					seq := uint32(0)
					for range bursts {
						held := b.hold(dst)
						for range each {
							if _, err := b.WriteToAddrPort(datagram(1, seq, 1000), dst); err != nil {
								t.Error(err)
							}
							seq++
						}
						if held {
							b.release(dst)
						}
					}
				})
				writers.Go(func() {
					for seq := range bursts * each {
						if _, err := b.WriteToAddrPort(datagram(uint32(2+i), uint32(seq), 200), dst); err != nil {
							t.Error(err)
						}
					}
				})
			}
			writers.Wait()
			wg.Wait()
			c := b.writeCounts()
			t.Logf("%d datagrams: %d sendto, %d in %d sendmmsg", 2*peers*bursts*each, c.Single, c.Batched, c.Batches)
			if c.Single+c.Batched != 2*peers*bursts*each {
				t.Errorf("%d datagrams written, counted %d", 2*peers*bursts*each, c.Single+c.Batched)
			}
		})
	}
}

// TestBatchConnReleaseAfterClose: a burst released on a closed socket is
// dropped, without blocking, and nothing stays held.
func TestBatchConnReleaseAfterClose(t *testing.T) {
	b, peer, _ := batchPair(t, "127.0.0.1:0", "udp4", "127.0.0.1")
	dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	b.hold(dst)
	if _, err := b.WriteToAddrPort(datagram(1, 0, 100), dst); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	b.release(dst)
	b.release(dst) // a second release finds nothing held
	if len(b.w.held) != 0 || b.w.busy {
		t.Fatalf("after the release: %d held, busy %v", len(b.w.held), b.w.busy)
	}
}

// TestBatchConnRefusesAnotherFamilyQuietly: a held datagram to an IPv6
// address on an IPv4 socket is refused by the kernel and dropped, the
// rest of the burst sent; it once panicked, writing the address as IPv4.
func TestBatchConnRefusesAnotherFamilyQuietly(t *testing.T) {
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := newBatchConn(sock).(*batchConn)
	defer b.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	v6 := netip.MustParseAddrPort("[2001:db8::7]:9")
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if !b.hold(v6) {
		t.Fatal("no hold")
	}
	if _, err := b.WriteToAddrPort(datagram(2, 0, 100), v6); err != nil {
		t.Fatal(err)
	}
	b.release(v6)
	if _, err := b.WriteToAddrPort(datagram(1, 0, 100), to); err != nil {
		t.Fatal(err)
	}
	readN(t, peer, 1)
}
