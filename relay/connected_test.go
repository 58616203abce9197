//go:build linux

package relay

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/openconsult/openconsult/internal/eventually"
)

// channelOf returns the fast-path channel number of the relay socket at
// relayed, as the relay socket sees it.
func (tr *testRelay) channelOf(t *testing.T, relayed net.Addr, number uint16) peerChannel {
	t.Helper()
	r := tr.ports[0].sockets
	r.mu.Lock()
	var c *relayConn
	for a, rc := range r.byAddr {
		if a.String() == relayed.String() {
			c = rc
		}
	}
	r.mu.Unlock()
	if c == nil {
		t.Fatalf("no relay socket at %s", relayed)
	}
	for _, ch := range *c.channels.Load() {
		if ch.number == number {
			return ch
		}
	}
	t.Fatalf("no channel %#x on %s", number, relayed)
	return peerChannel{}
}

// On the event loops a bound channel sends to its peer on a socket
// connected to it, which shares the relayed address: the peer's datagrams
// still reach the client as ChannelData, other permitted peers still
// reach it in Data indications, addresses without permission reach
// nobody, and the socket closes with the channel.
func TestChannelConnectedSocket(t *testing.T) {
	tr := startRelay(t, nil)
	raw, relayedAddr := allocateUDP(t, tr, "g_connected")
	conn := raw.conn
	peers := []net.PacketConn{newPeer(t), newPeer(t)}
	other := newPeer(t)
	for i, p := range peers {
		if code := errorCode(raw.request(stun.MethodChannelBind, channelNumber(0x4001+uint16(i)), udpPeer(t, p.LocalAddr()))); code != 0 {
			t.Fatalf("ChannelBind: error %d", code)
		}
	}
	var direct []peerChannel
	for i, p := range peers {
		ch := tr.channelOf(t, relayedAddr, 0x4001+uint16(i))
		want := p.LocalAddr().(*net.UDPAddr).AddrPort()
		if ch.direct == nil || ch.direct.RemoteAddr() != want || ch.direct.LocalAddr().Port() != uint16(relayedAddr.Port) {
			t.Fatalf("channel %#x: connected socket %v, want one on the relayed port connected to %s", ch.number, ch.direct, want)
		}
		direct = append(direct, ch)
	}

	buf := make([]byte, 2048)
	for i, p := range peers {
		number := 0x4001 + uint16(i)
		msg := []byte{'c', byte('0' + i)}
		if _, err := conn.WriteTo(udpChannelData(number, msg), tr.Addr()); err != nil {
			t.Fatal(err)
		}
		_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := p.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) || from.String() != relayedAddr.String() {
			t.Fatalf("peer %d got %q from %v (%v); want %q from %s", i, buf[:n], from, err, msg, relayedAddr)
		}
		back := []byte{'p', byte('0' + i)}
		if _, err := p.WriteTo(back, relayedAddr); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err = conn.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], udpChannelData(number, back)) {
			t.Fatalf("client got % x (%v); want ChannelData %#x carrying %q", buf[:n], err, number, back)
		}
	}

	// Another port of a permitted address reaches the client through
	// pion; an address without permission reaches nobody.
	expectPermissionPerAddress(t, conn, other, relayedAddr)

	// No other socket can take the relayed address.
	if s, err := tr.poll.Listen(relayedAddr.AddrPort(), nil); err == nil {
		s.Close()
		t.Fatal("a new socket bound the relayed address of an allocation with connected sockets")
	}

	// Releasing the allocation closes the connected sockets.
	if code := errorCode(raw.request(stun.MethodRefresh, lifetime(0))); code != 0 {
		t.Fatalf("Refresh to 0: error %d", code)
	}
	for _, ch := range direct {
		eventually.True(t, 5*time.Second, "the connected socket to close with the allocation", func() bool {
			_, err := ch.direct.WriteToUDPAddrPort([]byte("x"), ch.direct.RemoteAddr())
			return errors.Is(err, net.ErrClosed)
		})
	}
}
