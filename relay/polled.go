package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
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
// and add wake-ups: on two cores one loop took 11 % less CPU per packet
// than two (docs/benchmarks.md).
func relayLoops() int { return (runtime.GOMAXPROCS(0) + 3) / 4 }

// deliver is the Set's handler: a datagram from a peer arrived on c's
// socket. It runs on a loop goroutine and must not block.
func (c *relayConn) deliver(buf []byte, from netip.AddrPort) {
	n := len(buf) - udppoll.Headroom
	from = unmapped(from)
	if !c.admit(from.Addr(), n) {
		return
	}
	if ch := c.channelFor(from); ch != nil {
		frame := buf[udppoll.Headroom-channelHeader:]
		binary.BigEndian.PutUint16(frame, ch.number)
		binary.BigEndian.PutUint16(frame[2:], uint16(n))
		_, _ = ch.via.sock.WriteToUDPAddrPort(frame, ch.client)
		return
	}
	c.polled.queue(buf[udppoll.Headroom:], from)
}

// polledConn is a relay socket of a Set as pion/turn sees it.
type polledConn struct {
	sock  *udppoll.Socket[*relayConn]
	local *net.UDPAddr
	inbox chan polledDatagram
	done  chan struct{}
	once  sync.Once
}

type polledDatagram struct {
	b    []byte
	from netip.AddrPort
}

// queue hands a copy of b to pion's goroutine. The copy is made only on
// this path, which carries a call's first datagrams before the client
// binds a channel.
func (p *polledConn) queue(b []byte, from netip.AddrPort) {
	select {
	case p.inbox <- polledDatagram{b: append([]byte(nil), b...), from: from}:
	default:
	}
}

// ReadFrom returns the next datagram queued for pion, already admitted.
func (p *polledConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-p.inbox:
		return copy(b, d.b), net.UDPAddrFromAddrPort(d.from), nil
	case <-p.done:
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: p.local, Err: net.ErrClosed}
	}
}

// WriteTo is not used: relayConn sends through WriteToUDPAddrPort.
func (p *polledConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNotUDPAddr
	}
	return p.sock.WriteToUDPAddrPort(b, ua.AddrPort())
}

func (p *polledConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return p.sock.WriteToUDPAddrPort(b, addr)
}

// Close stops the socket's datagrams; once it returns the loop no longer
// calls deliver for it, and pion's ReadFrom returns.
func (p *polledConn) Close() error {
	err := p.sock.Close()
	p.once.Do(func() { close(p.done) })
	return err
}

func (p *polledConn) LocalAddr() net.Addr { return p.local }

// pion/turn sets no deadline on a relay socket; refusing one keeps a
// future caller from believing it had.
func (p *polledConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (p *polledConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (p *polledConn) SetWriteDeadline(time.Time) error { return errNoDeadline }

var errNoDeadline = errors.New("relay: relay sockets take no deadline")

// allocatePolled opens c's socket in the Set: on port when pion asks for
// one (EVEN-PORT reservations), otherwise on a free random port of the
// range, as pion's port-range generator would.
func (r *relaySockets) allocatePolled(port int, c *relayConn) (net.Addr, error) {
	bind, err := netip.ParseAddr(r.inner.Address)
	if err != nil {
		return nil, fmt.Errorf("relay: bind address %q: %w", r.inner.Address, err)
	}
	var sock *udppoll.Socket[*relayConn]
	if port != 0 {
		sock, err = r.poll.Listen(netip.AddrPortFrom(bind, uint16(port)), c)
	} else {
		span := int(r.inner.MaxPort) - int(r.inner.MinPort) + 1
		for range max(r.inner.MaxRetries, 1) {
			p := int(r.inner.MinPort) + rand.IntN(span)
			if sock, err = r.poll.Listen(netip.AddrPortFrom(bind, uint16(p)), c); err == nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("relay: no relay port: %w", err)
	}
	c.polled.sock = sock
	c.polled.local = net.UDPAddrFromAddrPort(sock.LocalAddr())
	return &net.UDPAddr{IP: r.inner.RelayAddress, Port: int(sock.LocalAddr().Port())}, nil
}
