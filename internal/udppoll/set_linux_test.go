//go:build linux

package udppoll

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

type received struct {
	socket   int
	payload  string
	headroom int
	from     netip.AddrPort
}

// collector records what a Set hands its handler.
type collector struct {
	mu  sync.Mutex
	got []received
}

func (c *collector) handle(socket int, buf []byte, from netip.AddrPort, _ *Out[int]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, received{socket, string(buf[Headroom:]), len(buf) - Headroom, from})
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func newSet(t *testing.T, loops int, h Handler[int]) *Set[int] {
	t.Helper()
	s, err := New(loops, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDatagramsReachTheirSocket(t *testing.T) {
	for _, loops := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d loops", loops), func(t *testing.T) {
			c := &collector{}
			s := newSet(t, loops, c.handle)
			const sockets, each = 40, 5
			addrs := make([]netip.AddrPort, sockets)
			for i := range sockets {
				sock, err := s.Listen(loopback, i)
				if err != nil {
					t.Fatal(err)
				}
				addrs[i] = sock.LocalAddr()
				if addrs[i].Port() == 0 || addrs[i].Addr() != loopback.Addr() {
					t.Fatalf("socket %d bound to %s", i, addrs[i])
				}
			}
			client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			for n := range each {
				for i, a := range addrs {
					if _, err := client.WriteToUDPAddrPort(fmt.Appendf(nil, "%d/%d", i, n), a); err != nil {
						t.Fatal(err)
					}
				}
			}
			eventually.True(t, 5*time.Second, "every datagram", func() bool { return c.count() == sockets*each })
			c.mu.Lock()
			defer c.mu.Unlock()
			seen := map[string]bool{}
			for _, r := range c.got {
				var i, n int
				if _, err := fmt.Sscanf(r.payload, "%d/%d", &i, &n); err != nil || i != r.socket {
					t.Fatalf("socket %d was handed %q", r.socket, r.payload)
				}
				if r.headroom != len(r.payload) || r.from != client.LocalAddr().(*net.UDPAddr).AddrPort() {
					t.Fatalf("datagram %q: %d bytes after the headroom, from %s", r.payload, r.headroom, r.from)
				}
				seen[r.payload] = true
			}
			if len(seen) != sockets*each {
				t.Fatalf("%d distinct datagrams, want %d", len(seen), sockets*each)
			}
		})
	}
}

func TestWriteAndDualStack(t *testing.T) {
	c := &collector{}
	s := newSet(t, 1, c.handle)
	tests := []struct {
		name   string
		listen netip.AddrPort
		peer   string
	}{
		{"IPv4", loopback, "127.0.0.1:0"},
		{"IPv6 wildcard takes IPv4", netip.MustParseAddrPort("[::]:0"), "127.0.0.1:0"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, err := s.Listen(tt.listen, i)
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			peer, err := net.ListenPacket("udp4", tt.peer)
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			if _, err := sock.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := peer.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hello" || from.(*net.UDPAddr).Port != int(sock.LocalAddr().Port()) {
				t.Fatalf("peer got %q from %v (%v)", buf[:n], from, err)
			}
			before := c.count()
			if _, err := peer.WriteTo([]byte("back"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), sock.LocalAddr().Port()))); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, 5*time.Second, "the reply", func() bool { return c.count() == before+1 })
			c.mu.Lock()
			last := c.got[len(c.got)-1]
			c.mu.Unlock()
			if last.payload != "back" || last.from != to {
				t.Fatalf("handler got %q from %s, want \"back\" from %s (IPv4, not mapped)", last.payload, last.from, to)
			}
		})
	}
	v4, err := s.Listen(loopback, 9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v4.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("[::1]:9")); err == nil {
		t.Fatal("an IPv4 socket wrote to an IPv6 address")
	}
}

// Closing sockets while their datagrams arrive never hands the handler a
// datagram of a socket whose Close has returned, and writes after Close
// fail cleanly.
func TestCloseWhileReceiving(t *testing.T) {
	var closedSockets sync.Map
	var late atomic.Int64
	s := newSet(t, 2, func(socket int, _ []byte, _ netip.AddrPort, _ *Out[int]) {
		if _, ok := closedSockets.Load(socket); ok {
			late.Add(1)
		}
	})
	var socks []*Socket[int]
	for i := range 30 {
		sock, err := s.Listen(loopback, i)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, sock)
	}
	client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	senders.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, sock := range socks {
				_, _ = client.WriteToUDPAddrPort([]byte("media"), sock.LocalAddr())
			}
			runtime.Gosched()
		}
	})
	for i, sock := range socks {
		time.Sleep(2 * time.Millisecond)
		if err := sock.Close(); err != nil {
			t.Fatalf("close socket %d: %v", i, err)
		}
		closedSockets.Store(i, true)
		if _, err := sock.WriteToUDPAddrPort([]byte("x"), loopback); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
		if err := sock.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
	}
	close(stop)
	senders.Wait()
	if n := late.Load(); n != 0 {
		t.Fatalf("%d datagrams handed over after their socket closed", n)
	}
}

func TestSetCloseEndsLoopsAndSockets(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(4, func(int, []byte, netip.AddrPort, *Out[int]) {})
	if err != nil {
		t.Fatal(err)
	}
	sock, err := s.Listen(loopback, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sock.WriteToUDPAddrPort([]byte("x"), loopback); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a socket of a closed set: %v", err)
	}
	if _, err := s.Listen(loopback, 1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listen on a closed set: %v", err)
	}
	eventually.True(t, 5*time.Second, "the loops to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestWriteAllocatesNothing(t *testing.T) {
	s := newSet(t, 1, func(int, []byte, netip.AddrPort, *Out[int]) {})
	sock, err := s.Listen(loopback, 0)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	to := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	b := bytes.Repeat([]byte{1}, 200)
	if n := testing.AllocsPerRun(100, func() { _, _ = sock.WriteToUDPAddrPort(b, to) }); n != 0 {
		t.Fatalf("%v allocations per write", n)
	}
}

// Datagrams are read in batches: more than a batch waiting on one socket
// all arrive, in order, and one longer than MaxDatagram is dropped without
// holding up the ones behind it.
func TestBatchesAndOversizedDatagrams(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int // payload sizes sent back to back
		want  []int // sizes received
	}{
		{"one", []int{100}, []int{100}},
		{"a batch and a half", repeat(50, batchSize*3/2), repeat(50, batchSize*3/2)},
		{"three batches", repeat(20, 3*batchSize), repeat(20, 3*batchSize)},
		{"the largest", []int{MaxDatagram}, []int{MaxDatagram}},
		{"too long, then short", []int{MaxDatagram + 1, 10, 60000, 11}, []int{10, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{}
			s := newSet(t, 1, c.handle)
			sock, err := s.Listen(loopback, 0)
			if err != nil {
				t.Fatal(err)
			}
			_ = sock.SetBuffers(1<<20, 1<<20)
			client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			for i, n := range tt.sizes {
				p := bytes.Repeat([]byte{byte('a' + i%26)}, n)
				if _, err := client.WriteToUDPAddrPort(p, sock.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			eventually.True(t, 5*time.Second, "every datagram that fits", func() bool { return c.count() >= len(tt.want) })
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.got) != len(tt.want) {
				t.Fatalf("received %d datagrams, want %d", len(c.got), len(tt.want))
			}
			for i, g := range c.got {
				if g.headroom != tt.want[i] || len(g.payload) != tt.want[i] {
					t.Fatalf("datagram %d: %d bytes, want %d", i, g.headroom, tt.want[i])
				}
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// What handlers queue on Out leaves once the loop has read what was
// waiting, through the socket it names, more than a queue's worth of it
// included, and in order for each socket.
func TestOutSendsWhatHandlersQueue(t *testing.T) {
	var first atomic.Pointer[Socket[int]]
	s := newSet(t, 1, func(_ int, buf []byte, from netip.AddrPort, out *Out[int]) {
		if err := out.Send(first.Load(), buf[Headroom:], from); err != nil {
			t.Errorf("Send: %v", err)
		}
	})
	const sockets, each = 3, 30 // 90 queued in a round or two: more than outSize
	addrs := make([]netip.AddrPort, sockets)
	for i := range sockets {
		sock, err := s.Listen(loopback, i)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first.Store(sock)
		}
		addrs[i] = sock.LocalAddr()
	}
	client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetReadBuffer(1 << 20)
	for n := range each {
		for i, a := range addrs {
			if _, err := client.WriteToUDPAddrPort(fmt.Appendf(nil, "%d/%02d", i, n), a); err != nil {
				t.Fatal(err)
			}
		}
	}
	next := make([]int, sockets)
	buf := make([]byte, 100)
	for range sockets * each {
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := client.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%v after %v", err, next)
		}
		if from != addrs[0] {
			t.Fatalf("a reply came from %s, not the socket it was queued on (%s)", from, addrs[0])
		}
		var i, seq int
		if _, err := fmt.Sscanf(string(buf[:n]), "%d/%d", &i, &seq); err != nil || seq != next[i] {
			t.Fatalf("reply %q out of order (want %d/%02d)", buf[:n], i, next[i])
		}
		next[i]++
	}
	if err := (&Out[int]{}).Send(first.Load(), make([]byte, MaxDatagram+1), addrs[1]); err == nil {
		t.Fatal("a datagram longer than MaxDatagram was queued")
	}
}
