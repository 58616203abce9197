package media

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v5/deadline"
)

// muxQueueLimit bounds the datagrams one connection's ICE reader has yet
// to take from the shared port, in bytes of buffers held, as pion's
// packetio buffers bound theirs: far above a keyframe's burst (tens of
// packets), so that only a connection whose reader has stopped drops.
const muxQueueLimit = 1_000_000

// maxDatagram is the longest datagram the shared port reads whole;
// media is at most some 1,200 bytes.
const maxDatagram = 2048

// udpMux is the shared UDP port as pion's ICE agents see it (ice.UDPMux):
// one reader takes every datagram, finds the connection it belongs to by
// its source address (or, for a STUN request from an address not yet
// known, by the ICE username fragment it names) and queues it for that
// connection's reader. It does what pion's UDPMuxDefault does, with the
// queued datagrams in the buffers of the node's packets (packetPool: the
// smallest of 256, 640, 1,024 or 1,500 bytes that holds one, given back
// once read) instead of 8 KiB each, which pion keeps in a pool that grows
// with the longest backlog: 0.7 to 3.3 MB at the end of a 60 s run of ten
// consults on a busy machine.
type udpMux struct {
	conn  addrPortConn
	local net.Addr
	bufs  srtpBuffers

	mu      sync.RWMutex
	byUfrag map[ufragKey]*muxConn
	byAddr  map[netip.AddrPort]*muxConn
	closed  bool

	done chan struct{} // the reader ended
}

// addrPortConn is a UDP socket read and written without an address
// allocation per datagram: *net.UDPConn and batchConn.
type addrPortConn interface {
	net.PacketConn
	ReadFromAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

type ufragKey struct {
	ufrag string
	ipv6  bool
}

var _ ice.UDPMux = (*udpMux)(nil)

// newUDPMux starts reading conn; Close stops it and closes conn.
func newUDPMux(conn addrPortConn, bufs srtpBuffers) *udpMux {
	m := &udpMux{conn: conn, local: conn.LocalAddr(), bufs: bufs,
		byUfrag: map[ufragKey]*muxConn{}, byAddr: map[netip.AddrPort]*muxConn{}, done: make(chan struct{})}
	go m.read() // ends when Close closes conn
	return m
}

// GetListenAddresses implements ice.UDPMux.
func (m *udpMux) GetListenAddresses() []net.Addr { return []net.Addr{m.local} }

// LocalAddr is the port's address.
func (m *udpMux) LocalAddr() net.Addr { return m.local }

// GetConn implements ice.UDPMux: the connection of ufrag, made on first
// use. Each call returns a handle of its own, to be closed once; the
// connection ends with the last.
func (m *udpMux) GetConn(ufrag string, addr net.Addr) (net.PacketConn, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return nil, errNotUDP
	}
	key := ufragKey{ufrag, ua.IP.To4() == nil}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, io.ErrClosedPipe
	}
	c, ok := m.byUfrag[key]
	if !ok {
		c = &muxConn{mux: m, key: key, notify: make(chan struct{}, 1), closedCh: make(chan struct{})}
		m.byUfrag[key] = c
	}
	c.refs++
	return &muxHandle{c: c, closed: make(chan struct{}), deadline: deadline.New()}, nil
}

// RemoveConnByUfrag implements ice.UDPMux: ufrag's connections no longer
// receive; their handles still close them.
func (m *udpMux) RemoveConnByUfrag(ufrag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v6 := range []bool{false, true} {
		if c, ok := m.byUfrag[ufragKey{ufrag, v6}]; ok {
			m.forgetLocked(c)
		}
	}
}

// forgetLocked removes c from the maps; the caller holds m.mu.
func (m *udpMux) forgetLocked(c *muxConn) {
	if m.byUfrag[c.key] == c {
		delete(m.byUfrag, c.key)
	}
	for _, a := range c.addrs {
		if m.byAddr[a] == c {
			delete(m.byAddr, a)
		}
	}
	c.addrs = nil
	c.last.Store(nil)
}

// Close implements ice.UDPMux: every connection ends, and the socket.
func (m *udpMux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	conns := make([]*muxConn, 0, len(m.byUfrag))
	for _, c := range m.byUfrag {
		conns = append(conns, c)
	}
	m.byUfrag, m.byAddr = map[ufragKey]*muxConn{}, map[netip.AddrPort]*muxConn{}
	m.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	err := m.conn.Close()
	<-m.done
	return err
}

// read hands each datagram to its connection until the socket closes.
func (m *udpMux) read() {
	defer close(m.done)
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := m.conn.ReadFromAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.isClosed() {
				return
			}
			// Anything else (a datagram's error queued by the kernel)
			// leaves the socket usable.
			time.Sleep(time.Millisecond)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if c := m.route(buf[:n], from); c != nil {
			c.deliver(buf[:n], from)
		}
	}
}

func (m *udpMux) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// route finds the connection a datagram from an address belongs to.
func (m *udpMux) route(p []byte, from netip.AddrPort) *muxConn {
	m.mu.RLock()
	c := m.byAddr[from]
	m.mu.RUnlock()
	if c != nil || !stun.IsMessage(p) {
		return c
	}
	ufrag, ok := stunUfrag(p)
	if !ok {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byUfrag[ufragKey{ufrag, from.Addr().Is6()}]
}

// stunUfrag returns the local username fragment a STUN request names
// (USERNAME is "local:remote" from the receiver's side).
func stunUfrag(p []byte) (string, bool) {
	msg := &stun.Message{Raw: append([]byte(nil), p...)}
	if err := msg.Decode(); err != nil {
		return "", false
	}
	user, err := msg.Get(stun.AttrUsername)
	if err != nil {
		return "", false
	}
	if i := bytes.IndexByte(user, ':'); i >= 0 {
		user = user[:i]
	}
	return string(user), true
}

// register routes datagrams from addr to c, taking addr from another
// connection that had it. Every write calls it: the address last
// registered is checked without the mux's lock.
func (m *udpMux) register(c *muxConn, addr netip.AddrPort) {
	if last := c.last.Load(); last != nil && *last == addr {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || c.gone {
		return
	}
	// A copy of its own, so that addr does not escape: the check above
	// runs for every datagram written and must not allocate.
	last := addr
	c.last.Store(&last)
	if m.byAddr[addr] == c {
		return
	}
	if old := m.byAddr[addr]; old != nil {
		if l := old.last.Load(); l != nil && *l == addr {
			old.last.Store(nil)
		}
		for i, a := range old.addrs {
			if a == addr {
				old.addrs = append(old.addrs[:i], old.addrs[i+1:]...)
				break
			}
		}
	}
	m.byAddr[addr] = c
	c.addrs = append(c.addrs, addr)
}

// release drops a handle's reference; the last ends the connection.
func (m *udpMux) release(c *muxConn) {
	m.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last {
		c.gone = true
		m.forgetLocked(c)
	}
	m.mu.Unlock()
	if last {
		c.close()
	}
}

// muxConn is one ICE agent's share of the port: the datagrams routed to
// it, queued until its candidate's reader takes them.
type muxConn struct {
	mux *udpMux
	key ufragKey
	// Under mux.mu.
	refs  int
	addrs []netip.AddrPort
	gone  bool
	// last is the address this connection last wrote to.
	last atomic.Pointer[netip.AddrPort]

	notify   chan struct{}
	closedCh chan struct{}

	mu     sync.Mutex
	q      []muxDatagram
	head   int
	size   int // bytes of buffers held
	closed bool
}

type muxDatagram struct {
	p    queuedPacket
	from netip.AddrPort
}

// deliver queues a copy of p, or drops it when the queue is full.
func (c *muxConn) deliver(p []byte, from netip.AddrPort) {
	c.mu.Lock()
	if c.closed || c.size+heldFor(len(p)) > muxQueueLimit {
		c.mu.Unlock()
		return
	}
	d := muxDatagram{p: c.mux.bufs.get(p), from: from}
	c.q = append(c.q, d)
	c.size += d.p.held()
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// next copies the oldest queued datagram into b; ok is false when none
// is queued.
func (c *muxConn) next(b []byte) (n int, from netip.AddrPort, ok bool, err error) {
	c.mu.Lock()
	if c.head == len(c.q) {
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return 0, netip.AddrPort{}, false, io.EOF
		}
		return 0, netip.AddrPort{}, false, nil
	}
	d := c.q[c.head]
	c.q[c.head] = muxDatagram{}
	c.head++
	c.size -= d.p.held()
	if c.head == len(c.q) {
		c.head = 0
		if cap(c.q) > 64 {
			c.q = nil // let go of what a burst grew
		} else {
			c.q = c.q[:0]
		}
	}
	c.mu.Unlock()
	data := d.p.bytes()
	if len(data) > len(b) {
		err = io.ErrShortBuffer
	} else {
		n = copy(b, data)
	}
	c.mux.bufs.put(d.p)
	return n, d.from, true, err
}

// close ends the connection and gives its queued buffers back.
func (c *muxConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	q := c.q[c.head:]
	c.q, c.head, c.size = nil, 0, 0
	c.mu.Unlock()
	for _, d := range q {
		c.mux.bufs.put(d.p)
	}
	close(c.closedCh)
}

// muxHandle is what GetConn returns: a net.PacketConn on a muxConn, with
// its own read deadline and Close, like pion's shared packet conns.
type muxHandle struct {
	c         *muxConn
	closeOnce sync.Once
	closed    chan struct{}
	deadline  *deadline.Deadline
}

// ReadFromAddrPort returns the next datagram routed to the connection.
func (h *muxHandle) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		select {
		case <-h.closed:
			return 0, netip.AddrPort{}, io.ErrClosedPipe
		default:
		}
		n, from, ok, err := h.c.next(b)
		if ok || err != nil {
			return n, from, err
		}
		select {
		case <-h.c.notify:
		case <-h.c.closedCh:
		case <-h.closed:
		case <-h.deadline.Done():
			return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
		}
	}
}

func (h *muxHandle) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := h.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToAddrPort sends b from the shared port; datagrams from addr are
// routed to this connection from then on.
func (h *muxHandle) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	select {
	case <-h.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	if !addr.IsValid() {
		return 0, errNotUDP
	}
	h.c.mux.register(h.c, netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()))
	return h.c.mux.conn.WriteToAddrPort(b, addr)
}

func (h *muxHandle) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errNotUDP
	}
	return h.WriteToAddrPort(b, ua.AddrPort())
}

// Close ends this handle; the connection ends with its last handle.
func (h *muxHandle) Close() error {
	h.closeOnce.Do(func() {
		close(h.closed)
		h.c.mux.release(h.c)
	})
	return nil
}

func (h *muxHandle) LocalAddr() net.Addr { return h.c.mux.local }

func (h *muxHandle) SetReadDeadline(t time.Time) error {
	h.deadline.Set(t)
	return nil
}

// SetWriteDeadline does nothing: writes go to the shared socket at once.
func (h *muxHandle) SetWriteDeadline(time.Time) error { return nil }

func (h *muxHandle) SetDeadline(t time.Time) error { return h.SetReadDeadline(t) }

var errNotUDP = errors.New("not a UDP address")
