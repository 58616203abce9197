//go:build linux

package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// batchPair is a batchConn and a plain socket that talks to it.
func batchPair(t *testing.T, listen, peerNet, peerAddr string) (*batchConn, *net.UDPConn, netip.AddrPort) {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", laddr)
	if err != nil {
		t.Skipf("listen %s: %v", listen, err)
	}
	b, ok := newBatchConn(c).(*batchConn)
	if !ok {
		t.Fatalf("%s: no batchConn", listen)
	}
	t.Cleanup(func() { _ = b.Close() })
	peer, err := net.ListenUDP(peerNet, &net.UDPAddr{IP: net.ParseIP(peerAddr)})
	if err != nil {
		t.Skipf("peer on %s: %v", peerAddr, err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	_ = peer.SetReadBuffer(4 << 20)
	_ = b.SetReadBuffer(4 << 20)
	port := uint16(b.LocalAddr().(*net.UDPAddr).Port)
	return b, peer, netip.AddrPortFrom(netip.MustParseAddr(peerAddr), port)
}

var batchCases = []struct {
	name, listen, peerNet, peerAddr string
}{
	{"IPv4 socket", "127.0.0.1:0", "udp4", "127.0.0.1"},
	{"dual-stack socket, IPv4 peer", ":0", "udp4", "127.0.0.1"},
	{"IPv6 socket", "[::1]:0", "udp6", "::1"},
}

// TestBatchConnReadsWhatWaitsInOneCall: datagrams that queued on the
// socket come out of one recvmmsg, each whole, in order, with its sender.
func TestBatchConnReadsWhatWaitsInOneCall(t *testing.T) {
	for _, tt := range batchCases {
		t.Run(tt.name, func(t *testing.T) {
			b, peer, to := batchPair(t, tt.listen, tt.peerNet, tt.peerAddr)
			const n = 20
			for i := range n {
				if _, err := peer.WriteToUDPAddrPort(bytes.Repeat([]byte{byte(i)}, 100+i), to); err != nil {
					t.Fatal(err)
				}
			}
			want := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			buf := make([]byte, 1500)
			_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := range n {
				k, from, err := b.ReadFromAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if !bytes.Equal(buf[:k], bytes.Repeat([]byte{byte(i)}, 100+i)) {
					t.Fatalf("datagram %d: %d bytes starting %x, want %d bytes of %x", i, k, buf[0], 100+i, i)
				}
				if from.Addr().Unmap() != want.Addr() || from.Port() != want.Port() {
					t.Fatalf("datagram %d from %s, want %s", i, from, want)
				}
				if i == 0 && b.r.n < 2 {
					t.Errorf("the first read took %d datagrams of the %d waiting", b.r.n, n)
				}
			}
		})
	}
}

// TestBatchConnDeliversConcurrentWrites: writers that queue behind one
// another lose nothing, and each writer's datagrams arrive in the order
// it wrote them.
func TestBatchConnDeliversConcurrentWrites(t *testing.T) {
	for _, tt := range batchCases {
		t.Run(tt.name, func(t *testing.T) {
			b, peer, _ := batchPair(t, tt.listen, tt.peerNet, tt.peerAddr)
			dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			const writers, each = 8, 300
			got := make(chan []byte, writers*each)
			go func() {
				defer close(got)
				buf := make([]byte, 1500)
				_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
				for range writers * each {
					k, err := peer.Read(buf)
					if err != nil {
						return
					}
					got <- append([]byte(nil), buf[:k]...)
				}
			}()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					p := make([]byte, 200)
					for i := range each {
						binary.BigEndian.PutUint32(p, uint32(w))
						binary.BigEndian.PutUint32(p[4:], uint32(i))
						if _, err := b.WriteToAddrPort(p, dst); err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
					}
				})
			}
			wg.Wait()
			next := make([]uint32, writers)
			count := 0
			for p := range got {
				w, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
				if len(p) != 200 || w >= writers {
					t.Fatalf("a datagram of %d bytes from writer %d", len(p), w)
				}
				if i != next[w] {
					t.Fatalf("writer %d: datagram %d after %d", w, i, next[w]-1)
				}
				next[w]++
				count++
			}
			if count != writers*each {
				t.Fatalf("%d of %d datagrams arrived", count, writers*each)
			}
		})
	}
}

// TestBatchConnSendsTheQueueInOneCall: what writers queue while another
// sends goes out with that writer's next drain, every datagram to its own
// address.
func TestBatchConnSendsTheQueueInOneCall(t *testing.T) {
	b, peer, _ := batchPair(t, "127.0.0.1:0", "udp4", "127.0.0.1")
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dsts := []*net.UDPConn{peer, other}
	b.w.mu.Lock()
	b.w.busy = true // as if another writer were in the middle of a send
	b.w.mu.Unlock()
	for i := range 6 {
		to := dsts[i%2].LocalAddr().(*net.UDPAddr).AddrPort()
		if _, err := b.WriteToAddrPort([]byte(fmt.Sprint("datagram ", i)), to); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.w.queue) != 6 {
		t.Fatalf("%d datagrams queued, want 6", len(b.w.queue))
	}
	b.drain()
	buf := make([]byte, 100)
	for i := range 6 {
		c := dsts[i%2]
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := fmt.Sprint("datagram ", i); string(buf[:k]) != want {
			t.Fatalf("got %q, want %q", buf[:k], want)
		}
	}
	if b.w.busy {
		t.Fatal("still busy after the drain")
	}
}
