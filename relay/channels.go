package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/openconsult/openconsult/internal/udppoll"
)

// The channel fast path relays ChannelData of clients on UDP, the bulk of
// a relayed call, without pion/turn: the gate forwards a client's
// ChannelData to the peer of its bound channel, and the relay socket sends
// a peer's datagram to the client as ChannelData, both with addresses that
// allocate nothing. pion/turn still owns every binding: it answers
// ChannelBind, expires channels and permissions and closes allocations, and
// its channel events keep this table in step. Everything else (Send and
// Data indications, clients on TCP or TLS, malformed or unbound
// ChannelData) goes through pion as before.
//
// Measured against pion's own path, this removes per packet a formatted
// debug string, a map key built from the 5-tuple, two locks, and the
// allocations of a net.UDPAddr and a ChannelData buffer
// (docs/benchmarks/turnd.md).

// channelHeader is the size of a ChannelData header: channel number and
// length (RFC 8656, 12.4).
const channelHeader = 4

// udpWriter and udpSocket are what the fast path needs of a UDP socket;
// *net.UDPConn has both.
type udpWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

type udpSocket interface {
	udpWriter
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
}

type channelKey struct {
	client netip.AddrPort // unmapped, so one client has one key
	number uint16
}

type channelRoute struct {
	relay *relayConn
	peer  netip.AddrPort
	out   udpWriter // the channel's connected socket, or the relay socket
}

// channels is the table of bound channels of the clients of one UDP
// listener. It is read once per client datagram by the listener's one read
// loop and written when pion binds or drops a channel.
type channels struct {
	sock udpWriter // the listener, to which peers' datagrams go as ChannelData
	// polled is the listener's socket when an event loop reads it; the
	// loops then queue peers' datagrams to it and send them in batches.
	polled *udppoll.Socket[datagramSink]

	mu    sync.RWMutex
	route map[channelKey]channelRoute
}

func newChannels(sock udpWriter) *channels {
	return &channels{sock: sock, route: map[channelKey]channelRoute{}}
}

// bind installs or removes the channel that pion reports, in both
// directions.
func (t *channels) bind(rc *relayConn, client, peer netip.AddrPort, number uint16, bound bool) {
	key := channelKey{unmapped(client), number}
	peer = unmapped(peer)
	if allowed, _ := rc.policy.Check(peer.Addr()); bound && !allowed {
		// pion binds no channel to a peer the policy refuses; if it ever
		// did, its own path would refuse each datagram.
		return
	}
	ch := peerChannel{peer: peer, number: number, client: key.client, via: t}
	out := rc.sock
	if bound {
		if ch.direct = rc.connected(peer, number); ch.direct != nil {
			out = ch.direct
		}
	}
	t.mu.Lock()
	if bound {
		t.route[key] = channelRoute{relay: rc, peer: peer, out: out}
	} else if r, ok := t.route[key]; ok && r.relay == rc {
		delete(t.route, key)
	}
	t.mu.Unlock()
	rc.setChannel(ch, bound)
}

// forget drops every channel of a relay socket that is closing, in case
// pion closed it without reporting each channel.
func (t *channels) forget(rc *relayConn) {
	t.mu.Lock()
	for k, r := range t.route {
		if r.relay == rc {
			delete(t.route, k)
		}
	}
	t.mu.Unlock()
}

// forward relays b, a datagram from client, when it is ChannelData on a
// bound channel, and reports whether it did. Anything else is left to
// pion, which answers or drops it as before.
func (t *channels) forward(b []byte, client netip.AddrPort) bool {
	if len(b) < channelHeader || b[0]&0xC0 != 0x40 {
		return false
	}
	length := int(binary.BigEndian.Uint16(b[2:]))
	if channelHeader+length > len(b) {
		return false
	}
	key := channelKey{unmapped(client), binary.BigEndian.Uint16(b)}
	t.mu.RLock()
	r, ok := t.route[key]
	t.mu.RUnlock()
	if !ok {
		return false
	}
	// The peer passed the policy when the channel was bound. A failed send
	// is lost like any UDP datagram, as in pion.
	_, _ = r.relay.sendVia(r.out, b[channelHeader:channelHeader+length], r.peer, nil)
	return true
}

// peerChannel is a channel as its relay socket sees it: datagrams from
// peer go to client as ChannelData with number, through the listener.
type peerChannel struct {
	peer   netip.AddrPort
	number uint16
	client netip.AddrPort
	via    *channels
	// direct is the relay socket's second socket, connected to peer, on
	// which the fast path sends to peer and the kernel delivers peer's
	// datagrams (udppoll.Socket.Connected); nil without an event loop.
	direct *udppoll.Socket[datagramSink]
}

// send sends frame, a peer's datagram behind channelHeader free bytes, to
// the client as ChannelData. Lost like any UDP datagram if the send fails.
func (ch *peerChannel) send(frame []byte) {
	binary.BigEndian.PutUint16(frame, ch.number)
	binary.BigEndian.PutUint16(frame[2:], uint16(len(frame)-channelHeader))
	// Over UDP, ChannelData needs no padding (RFC 8656, 12.5).
	_, _ = ch.via.sock.WriteToUDPAddrPort(frame, ch.client)
}

// queue is send on an event loop: the ChannelData leaves with the loop's
// next batch to the listener.
func (ch *peerChannel) queue(frame []byte, out *sendQueue) {
	if ch.via.polled == nil {
		ch.send(frame)
		return
	}
	binary.BigEndian.PutUint16(frame, ch.number)
	binary.BigEndian.PutUint16(frame[2:], uint16(len(frame)-channelHeader))
	_ = out.Send(ch.via.polled, frame, ch.client)
}

func (c *relayConn) setChannel(ch peerChannel, bound bool) {
	c.permMu.Lock()
	defer c.permMu.Unlock()
	cur := *c.channels.Load()
	next := slices.DeleteFunc(slices.Clone(cur), func(o peerChannel) bool {
		return o.number == ch.number || o.peer == ch.peer
	})
	if bound {
		next = append(next, ch)
	}
	c.channels.Store(&next)
	for _, o := range cur {
		if o.direct != nil && o.direct != ch.direct && !slices.ContainsFunc(next, func(n peerChannel) bool { return n.direct == o.direct }) {
			_ = o.direct.Close()
		}
	}
}

// connected returns the socket connected to peer for the channel number
// to peer: the one the channel has when pion binds it again, otherwise a
// new one. nil without an event loop, or when the kernel refuses one: the
// channel then sends on the relay socket.
func (c *relayConn) connected(peer netip.AddrPort, number uint16) *udppoll.Socket[datagramSink] {
	if c.polled == nil {
		return nil
	}
	c.permMu.Lock()
	defer c.permMu.Unlock()
	if c.closing {
		return nil
	}
	for _, o := range *c.channels.Load() {
		if o.number == number && o.peer == peer && o.direct != nil {
			return o.direct
		}
	}
	direct, err := c.polled.sock.Connected(peer)
	if err != nil {
		return nil
	}
	return direct
}

// closeDirect closes the connected sockets of a relay socket's channels.
func (c *relayConn) closeDirect() {
	c.permMu.Lock()
	defer c.permMu.Unlock()
	c.closing = true
	for _, ch := range *c.channels.Load() {
		if ch.direct != nil {
			_ = ch.direct.Close()
		}
	}
}

func (c *relayConn) channelFor(peer netip.AddrPort) *peerChannel {
	chans := *c.channels.Load()
	for i := range chans {
		if chans[i].peer == peer {
			return &chans[i]
		}
	}
	return nil
}

// readFast is ReadFrom for a relay socket whose datagrams can be read with
// netip addresses. A datagram from the peer of a channel goes to the
// client as ChannelData at once; others are returned to pion. The datagram
// is read behind room for the ChannelData header, so that it is sent
// without a copy.
func (c *relayConn) readFast(sock udpSocket, p []byte) (int, net.Addr, error) {
	if len(c.buf) < channelHeader+len(p) {
		c.buf = make([]byte, channelHeader+len(p))
	}
	buf := c.buf[:channelHeader+len(p)]
	for {
		n, from, err := sock.ReadFromUDPAddrPort(buf[channelHeader:])
		if err != nil {
			return 0, nil, err
		}
		from = unmapped(from)
		if !c.admit(from.Addr(), n) {
			continue
		}
		if ch := c.channelFor(from); ch != nil {
			ch.send(buf[:channelHeader+n])
			continue
		}
		return copy(p, buf[channelHeader:channelHeader+n]), net.UDPAddrFromAddrPort(from), nil
	}
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
