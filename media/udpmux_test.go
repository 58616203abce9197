package media

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

func newTestMux(t *testing.T) (*udpMux, *net.UDPAddr) {
	t.Helper()
	m, err := listenUDPMux(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, newSRTPBuffers(newPacketPool()), &udpSockets{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, m.LocalAddr().(*net.UDPAddr)
}

func bindingRequest(t *testing.T, username string) []byte {
	t.Helper()
	msg, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(username))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Raw
}

// readWithin reads one datagram from c, failing after a second.
func readWithin(t *testing.T, c net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, maxDatagram)
	n, from, err := c.ReadFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n], from
}

// A datagram from an address no connection has written to reaches the
// connection whose username fragment its STUN request names, and nothing
// else does; once the connection answers that address, everything from it
// is the connection's.
func TestUDPMuxRoutesByUfragThenAddress(t *testing.T) {
	m, addr := newTestMux(t)
	a, err := m.GetConn("ufragA", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := m.GetConn("ufragB", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	media := []byte{0x80, 96, 0, 1} // not STUN: dropped while the address is unknown
	req := bindingRequest(t, "ufragA:remote")
	for _, p := range [][]byte{media, req} {
		if _, err := peer.WriteTo(p, addr); err != nil {
			t.Fatal(err)
		}
	}
	got, from := readWithin(t, a)
	if !bytes.Equal(got, req) {
		t.Fatalf("connection A read % x, want the binding request", got)
	}
	if _, err := a.WriteTo([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo(media, addr); err != nil {
		t.Fatal(err)
	}
	if got, _ := readWithin(t, a); !bytes.Equal(got, media) {
		t.Fatalf("connection A read % x, want the media datagram", got)
	}
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := b.ReadFrom(make([]byte, maxDatagram)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection B read %d bytes (err %v), want nothing", n, err)
	}
}

// A keyframe's burst, or several frames' while the connection's reader
// waits for a core, queues whole and in order; only a queue holding
// muxQueueLimit of buffers drops.
func TestUDPMuxQueueKeepsBursts(t *testing.T) {
	tests := []struct {
		name    string
		packets int
		size    int
		kept    int
	}{
		{"keyframe of a 720p layer", 60, 1200, 60},
		{"seconds of a stalled reader", 1000, 1200, muxQueueLimit / maxPacket},
		{"audio", 500, 100, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, addr := newTestMux(t)
			h, err := m.GetConn("u", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			c := h.(*muxHandle).c
			from := netip.MustParseAddrPort("192.0.2.1:5000")
			for i := range tt.packets {
				p := make([]byte, tt.size)
				p[0], p[1] = byte(i>>8), byte(i)
				c.deliver(p, from)
			}
			buf := make([]byte, maxDatagram)
			for i := range tt.kept {
				n, got, ok, err := c.next(buf)
				if !ok || err != nil || n != tt.size || got != from || int(buf[0])<<8|int(buf[1]) != i {
					t.Fatalf("datagram %d: %d bytes from %v (ok %v, err %v), number %d", i, n, got, ok, err, int(buf[0])<<8|int(buf[1]))
				}
			}
			if _, _, ok, _ := c.next(buf); ok {
				t.Fatalf("more than %d datagrams kept", tt.kept)
			}
			if c.size != 0 {
				t.Fatalf("an empty queue holds %d bytes", c.size)
			}
		})
	}
}

// Closing a handle ends its blocked read; the connection ends with the
// last handle, and the mux's Close ends everything and its reader.
func TestUDPMuxClose(t *testing.T) {
	m, addr := newTestMux(t)
	h1, err := m.GetConn("u", addr)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := m.GetConn("u", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := h1.ReadFrom(make([]byte, maxDatagram))
		done <- err
	}()
	_ = h1.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("read after Close: %v, want io.ErrClosedPipe", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not end the blocked read")
	}
	c := h2.(*muxHandle).c
	if c.closed {
		t.Fatal("the connection ended while a handle was open")
	}
	_ = h2.Close()
	m.mu.Lock()
	left := len(m.byUfrag)
	m.mu.Unlock()
	if !c.closed || left != 0 {
		t.Fatalf("after the last handle: closed %v, %d connections routed", c.closed, left)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.done:
	default:
		t.Fatal("the mux's reader still runs after Close")
	}
	if _, err := m.GetConn("v", addr); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("GetConn after Close: %v", err)
	}
}

// An address belongs to the connection that wrote to it last, and goes
// back when the first writes to it again.
func TestUDPMuxAddressGoesToTheLastWriter(t *testing.T) {
	m, addr := newTestMux(t)
	var hs []net.PacketConn
	for _, u := range []string{"a", "b"} {
		h, err := m.GetConn(u, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hs = append(hs, h)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	for i, w := range []int{0, 1, 0, 0} {
		if _, err := hs[w].WriteTo([]byte("out"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := peer.ReadFrom(make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
		in := []byte{0x80, byte(i)}
		if _, err := peer.WriteTo(in, addr); err != nil {
			t.Fatal(err)
		}
		if got, _ := readWithin(t, hs[w]); !bytes.Equal(got, in) {
			t.Fatalf("write %d: connection %d read % x, want % x", i, w, got, in)
		}
	}
}

// Routing a connection's datagrams to the address it writes to costs
// nothing once the address is known: register runs for every datagram
// written, and an allocation there was one per forwarded packet.
func TestUDPMuxRegisterKnownAddressDoesNotAllocate(t *testing.T) {
	m, addr := newTestMux(t)
	pc, err := m.GetConn("ufragA", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := pc.(*muxHandle).c
	to := netip.MustParseAddrPort("127.0.0.1:40000")
	m.register(c, to)
	if allocs := testing.AllocsPerRun(100, func() { m.register(c, to) }); allocs != 0 {
		t.Fatalf("register of a known address: %v allocations, want 0", allocs)
	}
	other := netip.MustParseAddrPort("127.0.0.1:40001")
	m.register(c, other)
	if got := *c.last.Load(); got != other {
		t.Fatalf("last address %v, want %v", got, other)
	}
}
