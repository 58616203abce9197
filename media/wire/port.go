package wire

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// PacketConn is the node's shared UDP socket as a Port uses it: read by
// one goroutine, written by any, without an address allocation per
// datagram (*net.UDPConn, and the node's batching socket).
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	LocalAddr() net.Addr
	Close() error
}

// Port is one UDP port shared by every connection of the node: its one
// reader routes each datagram to the connection it belongs to, by its
// source address once that address passed a check, or, for a binding
// request from an address not yet known, by the local ufrag its USERNAME
// names; and delivers it there on the same goroutine.
type Port struct {
	conn PacketConn
	log  *slog.Logger

	mu      sync.RWMutex
	byUfrag map[string]*Conn
	byAddr  map[netip.AddrPort]*Conn
	addrs   map[*Conn][]netip.AddrPort
	closed  bool
	// ICE-TCP (tcp.go): the accepted connections by remote address, and
	// the listeners. A remote address names a TCP connection before a
	// UDP one: only the same host could send from both.
	tcp          map[netip.AddrPort]*tcpLink
	unchecked    map[netip.Addr]int // TCP connections not yet checked, by remote IP
	tcpListeners []net.Listener

	done chan struct{}  // the UDP reader ended
	stop chan struct{}  // closed by Close: the consent checker ends
	wg   sync.WaitGroup // the ICE-TCP goroutines and the consent checker
}

// consentEvery is how often the port has its connections check the
// remote side's consent (Conn.CheckConsent).
const consentEvery = time.Second

// maxDatagram is the longest datagram read whole; WebRTC media keeps
// under 1,280 bytes.
const maxDatagram = 2048

// NewPort starts reading conn; Close stops it and closes conn.
func NewPort(conn PacketConn, log *slog.Logger) *Port {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Port{conn: conn, log: log, byUfrag: map[string]*Conn{}, byAddr: map[netip.AddrPort]*Conn{},
		addrs: map[*Conn][]netip.AddrPort{}, tcp: map[netip.AddrPort]*tcpLink{}, unchecked: map[netip.Addr]int{}, done: make(chan struct{}), stop: make(chan struct{})}
	go p.read() // ends when Close closes conn
	p.wg.Go(p.checkConsent)
	return p
}

// checkConsent has every routed connection check consent each
// consentEvery, until the port closes: a connection whose remote side
// went away without a word is disconnected, then fails.
func (p *Port) checkConsent() {
	t := time.NewTicker(consentEvery)
	defer t.Stop()
	var conns []*Conn
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		conns = conns[:0]
		p.mu.RLock()
		for _, c := range p.byUfrag {
			conns = append(conns, c)
		}
		p.mu.RUnlock()
		for i, c := range conns {
			c.CheckConsent()
			conns[i] = nil
		}
	}
}

// LocalAddr is the port's address.
func (p *Port) LocalAddr() net.Addr { return p.conn.LocalAddr() }

// Send writes b to addr, over ICE-TCP if addr is a TCP connection's; it
// is what each connection's Config.Send is.
func (p *Port) Send(b []byte, to netip.AddrPort) error {
	p.mu.RLock()
	l := p.tcp[to]
	p.mu.RUnlock()
	if l != nil {
		return l.write(b)
	}
	_, err := p.conn.WriteToUDPAddrPort(b, to)
	return err
}

// Route has binding requests that name ufrag as the local one go to c;
// an ICE restart adds the new ufrag. Every address c is checked from
// then on goes to c.
func (p *Port) Route(ufrag string, c *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	if other, ok := p.byUfrag[ufrag]; ok && other != c {
		return errors.New("wire: a connection already has that ufrag")
	}
	p.byUfrag[ufrag] = c
	return nil
}

// Routes reports whether datagrams from addr go to a connection: addr
// passed a check on this port, or is an ICE-TCP connection's.
func (p *Port) Routes(addr netip.AddrPort) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byAddr[addr] != nil || p.tcp[addr] != nil
}

// Forget stops routing anything to c.
func (p *Port) Forget(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for u, o := range p.byUfrag {
		if o == c {
			delete(p.byUfrag, u)
		}
	}
	for _, a := range p.addrs[c] {
		if p.byAddr[a] == c {
			delete(p.byAddr, a)
		}
	}
	delete(p.addrs, c)
}

// Close stops the reader and closes the socket.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	lns := p.tcpListeners
	links := make([]*tcpLink, 0, len(p.tcp))
	for _, l := range p.tcp {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, l := range links {
		_ = l.c.Close()
	}
	err := p.conn.Close()
	<-p.done
	p.wg.Wait()
	return err
}

func (p *Port) read() {
	defer close(p.done)
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.isClosed() {
				return
			}
			// An error the kernel queued for an earlier datagram leaves
			// the socket usable.
			time.Sleep(time.Millisecond)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		p.deliver(buf[:n], from)
	}
}

func (p *Port) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// deliver hands a datagram to its connection. A binding request from an
// address no connection has yet goes to the connection its USERNAME
// names, and the address is that connection's once the check passed.
func (p *Port) deliver(b []byte, from netip.AddrPort) {
	p.mu.RLock()
	c := p.byAddr[from]
	p.mu.RUnlock()
	if c != nil {
		_ = c.DeliverVia(b, from, p.Send) // the connection refuses what is not its own
		return
	}
	if Classify(b) != KindSTUN {
		return
	}
	ufrag, ok := localUfrag(b)
	if !ok {
		return
	}
	p.mu.RLock()
	c = p.byUfrag[ufrag]
	p.mu.RUnlock()
	// The answer leaves from this socket: the connection may be routed on
	// the host's other addresses too, where from is not yet known.
	if c == nil || c.DeliverVia(b, from, p.Send) != nil || !c.checked(from) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byUfrag[ufrag] != c { // forgotten meanwhile
		return
	}
	if old := p.byAddr[from]; old != nil && old != c {
		p.addrs[old] = dropAddr(p.addrs[old], from)
	}
	p.byAddr[from] = c
	p.addrs[c] = append(dropAddr(p.addrs[c], from), from)
	if as := p.addrs[c]; len(as) > maxValid { // as the connection itself forgets them
		if p.byAddr[as[0]] == c {
			delete(p.byAddr, as[0])
		}
		p.addrs[c] = as[1:]
	}
}

func dropAddr(as []netip.AddrPort, a netip.AddrPort) []netip.AddrPort {
	for i, x := range as {
		if x == a {
			return append(as[:i], as[i+1:]...)
		}
	}
	return as
}

// localUfrag is the local ufrag a binding request's USERNAME names
// ("local:remote" from the receiver's side).
func localUfrag(b []byte) (string, bool) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return "", false
	}
	user, err := m.Get(stun.AttrUsername)
	if err != nil {
		return "", false
	}
	local, _, ok := bytes.Cut(user, []byte{':'})
	return string(local), ok
}
