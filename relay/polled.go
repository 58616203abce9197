package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/udppoll"
)

// On Linux the relay sockets are not read by pion/turn's goroutine per
// allocation but by a few loops of an udppoll.Set, which serve every
// socket that became readable with one wake-up (see package udppoll). A
// datagram from a peer is checked and, for a bound channel, sent on to the
// client right there; the rest (Data indications) are queued for the
// allocation's pion goroutine, which then only waits on a channel.

// polledInbox is how many datagrams for pion's path an allocation holds;
// more are dropped, as a full socket buffer would.
const polledInbox = 64

// relayLoops is how many loops read the relay sockets: one per four
// processors the Go runtime uses. A loop serves every socket that became
// readable with one wake-up, so more loops than needed split the batches
// and add wake-ups: on two cores one loop took a fifth less CPU per
// packet than two (docs/benchmarks/turnd.md), and one loop forwards at least
// 40,000 packets a second on a fifth of a core.
func relayLoops() int { return (runtime.GOMAXPROCS(0) + 3) / 4 }

// datagramSink is what a socket of the relay's Set hands its datagrams
// to: a relay socket, or the TURN port's UDP listener.
type datagramSink interface {
	deliver(buf []byte, from netip.AddrPort, out *sendQueue)
}

// sendQueue is a loop's queue of datagrams to send (udppoll.Out).
type sendQueue = udppoll.Out[datagramSink]

func newPollSet() (*udppoll.Set[datagramSink], error) {
	return udppoll.New(relayLoops(), func(v datagramSink, buf []byte, from netip.AddrPort, out *sendQueue) { v.deliver(buf, from, out) })
}

// deliver: a datagram from a peer arrived on c's socket. It runs on a
// loop goroutine and must not block.
// from is already in the unmapped form udppoll hands out.
func (c *relayConn) deliver(buf []byte, from netip.AddrPort, out *sendQueue) {
	if !c.admit(from.Addr(), len(buf)-udppoll.Headroom) {
		return
	}
	if ch := c.channelFor(from); ch != nil {
		ch.queue(buf[udppoll.Headroom-channelHeader:], out)
		return
	}
	c.polled.queue(buf[udppoll.Headroom:], from)
}

// pionQueue holds the datagrams of a Set's socket that pion/turn must
// handle, for pion's goroutine reading the socket.
type pionQueue struct {
	local *net.UDPAddr
	inbox chan polledDatagram
	done  chan struct{}
	once  sync.Once
}

type polledDatagram struct {
	b    []byte
	from netip.AddrPort
}

func newPionQueue(size int) pionQueue {
	return pionQueue{inbox: make(chan polledDatagram, size), done: make(chan struct{})}
}

// queue hands a copy of b to pion's goroutine, or drops it when pion is
// that far behind, as a full socket buffer would. The copy is made only on
// this path, which carries requests and a call's first datagrams, before
// the client binds a channel.
func (q *pionQueue) queue(b []byte, from netip.AddrPort) {
	select {
	case q.inbox <- polledDatagram{b: append([]byte(nil), b...), from: from}:
	default:
	}
}

// ReadFrom returns the next datagram queued for pion.
func (q *pionQueue) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-q.inbox:
		return copy(b, d.b), net.UDPAddrFromAddrPort(d.from), nil
	case <-q.done:
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: q.local, Err: net.ErrClosed}
	}
}

func (q *pionQueue) stop() { q.once.Do(func() { close(q.done) }) }

func (q *pionQueue) LocalAddr() net.Addr { return q.local }

// pion/turn sets no deadline on these sockets; refusing one keeps a
// future caller from believing it had.
func (q *pionQueue) SetDeadline(time.Time) error      { return errNoDeadline }
func (q *pionQueue) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (q *pionQueue) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("relay: this socket takes no deadline")

// polledSocket is a socket of the Set as pion/turn sees it: a relay
// socket, or the core of the polled listener.
type polledSocket struct {
	pionQueue
	sock *udppoll.Socket[datagramSink]
}

func (p *polledSocket) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNotUDPAddr
	}
	return p.sock.WriteToUDPAddrPort(b, ua.AddrPort())
}

func (p *polledSocket) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return p.sock.WriteToUDPAddrPort(b, addr)
}

// Close stops the socket's datagrams; once it returns the loop no longer
// hands it any, and pion's ReadFrom returns.
func (p *polledSocket) Close() error {
	err := p.sock.Close()
	p.stop()
	return err
}

// polledListener is the TURN port's UDP socket in the Set: ChannelData on
// a bound channel goes to its peer from the loop; everything else goes to
// pion's read loop through the gate.
type polledListener struct {
	polledSocket
	channels *channels
}

func (l *polledListener) deliver(buf []byte, from netip.AddrPort, _ *sendQueue) {
	b := buf[udppoll.Headroom:]
	if l.channels.forward(b, from) {
		return
	}
	l.queue(b, from)
}

// listenerBuffer is the socket buffer size asked for the UDP listener,
// which carries every UDP client's media: about 0.3 s of 100 Mbit/s, so
// that a moment's delay of its loop loses nothing. The kernel caps it at
// net.core.rmem_max (docs/operations.md).
const listenerBuffer = 4 << 20

// listenerInbox is how many datagrams for pion the UDP listener holds:
// requests of every client, and ChannelData sent before its channel is
// bound.
const listenerInbox = 1024

// listenPolled opens the TURN port's UDP socket in the Set. A wildcard
// address listens on IPv6 and IPv4 alike where the system has IPv6, as
// net.ListenPacket("udp", ...) does.
func (s *Server) listenPolled(address string) (*polledListener, error) {
	ua, err := net.ResolveUDPAddr("udp", address)
	if err != nil {
		return nil, fmt.Errorf("relay UDP listener %s: %w", address, err)
	}
	at := ua.AddrPort()
	l := &polledListener{polledSocket: polledSocket{pionQueue: newPionQueue(listenerInbox)}}
	l.channels = newChannels(l)
	var sock *udppoll.Socket[datagramSink]
	if ip := at.Addr().Unmap(); !ip.IsValid() || ip.IsUnspecified() {
		sock, err = s.poll.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), at.Port()), l)
		if err != nil {
			sock, err = s.poll.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), at.Port()), l)
		}
	} else {
		sock, err = s.poll.Listen(at, l)
	}
	if err != nil {
		return nil, fmt.Errorf("relay UDP listener %s: %w", address, err)
	}
	l.sock, l.local = sock, net.UDPAddrFromAddrPort(sock.LocalAddr())
	l.channels.polled = sock
	_ = sock.SetBuffers(listenerBuffer, listenerBuffer)
	return l, nil
}
