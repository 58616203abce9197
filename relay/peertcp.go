package relay

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// peerListener is a TCP allocation's listener (RFC 6062): a connection
// from a peer the policy refuses is closed as it is accepted, before pion
// tells the client of it. pion closes any other peer without a permission.
type peerListener struct {
	net.Listener
	s    *relaySockets
	cap  *streamCap // nil without a per-allocation cap
	key  netip.AddrPort
	once sync.Once
}

// Close closes the listener once and forgets the allocation's cap; a
// later call returns nil, as relayConn's does.
func (l *peerListener) Close() error {
	var err error
	l.once.Do(func() {
		l.s.forgetStream(l.key)
		l.s.mu.Lock()
		delete(l.s.listeners, l)
		l.s.mu.Unlock()
		err = l.Listener.Close()
		if err == nil && l.s.closeFails {
			err = errCloseFailed
		}
	})
	return err
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		from, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok {
			_ = c.Close()
			continue
		}
		if allowed, class := l.s.policy.Check(from.AddrPort().Addr()); !allowed {
			l.s.refused(class)
			_ = c.Close()
			continue
		}
		return newPeerConn(c, l.s, l.cap), nil
	}
}

// streamCap is a TCP allocation's per-allocation cap, shared by its
// connections with peers.
type streamCap struct{ in, out *bucket }

// tcpChunk is the most a capped connection reads or writes at once, so that
// pacing stays smooth.
const tcpChunk = 16 << 10

// peerConn is a TCP allocation's connection with a peer; it counts the
// bytes relayed and applies the bandwidth caps by pacing: TCP must not lose
// data, so where a datagram over the cap is dropped, a stream waits until
// the cap has room, and TCP's flow control slows the sender down.
type peerConn struct {
	net.Conn
	s    *relaySockets
	cap  *streamCap // nil without a per-allocation cap
	done chan struct{}
	once sync.Once
}

func newPeerConn(c net.Conn, s *relaySockets, cap *streamCap) *peerConn {
	return &peerConn{Conn: c, s: s, cap: cap, done: make(chan struct{})}
}

func (c *peerConn) capped() bool { return c.cap != nil || c.s.total != nil }

func (c *peerConn) Read(p []byte) (int, error) {
	if c.capped() && len(p) > tcpChunk {
		p = p[:tcpChunk]
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.metrics.fromPeerBytes.Add(float64(n))
		if perr := c.pace(fromPeer, n); perr != nil && err == nil {
			err = perr
		}
	}
	return n, err
}

func (c *peerConn) Write(p []byte) (int, error) {
	if !c.capped() {
		n, err := c.Conn.Write(p)
		if n > 0 {
			c.s.metrics.toPeerBytes.Add(float64(n))
		}
		return n, err
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), tcpChunk)]
		if err := c.pace(toPeer, len(chunk)); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(chunk)
		written += n
		if n > 0 {
			c.s.metrics.toPeerBytes.Add(float64(n))
		}
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// pace takes n bytes from the caps of direction d and waits, if they are
// spent ahead, until they would have refilled; Close cuts the wait short.
func (c *peerConn) pace(d direction, n int) error {
	var wait time.Duration
	if c.cap != nil {
		b := c.cap.out
		if d == fromPeer {
			b = c.cap.in
		}
		wait = b.reserve(n)
	}
	if c.s.total != nil {
		wait = max(wait, c.s.total.reserve(d, n))
	}
	if wait <= 0 {
		return nil
	}
	c.s.metrics.streamPaced.Add(wait.Seconds())
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

func (c *peerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		close(c.done)
		err = c.Conn.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// newStreamCap registers the per-allocation cap of the TCP allocation
// relayed at key, or returns nil without one.
func (r *relaySockets) newStreamCap(key netip.AddrPort) *streamCap {
	if r.maxBPS <= 0 {
		return nil
	}
	c := &streamCap{in: newBucket(r.maxBPS, r.now), out: newBucket(r.maxBPS, r.now)}
	r.mu.Lock()
	r.streams[key] = c
	r.mu.Unlock()
	return c
}

// streamCapOf returns the cap of the TCP allocation relayed at key.
func (r *relaySockets) streamCapOf(key netip.AddrPort) *streamCap {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[key]
}

func (r *relaySockets) forgetStream(key netip.AddrPort) {
	r.mu.Lock()
	delete(r.streams, key)
	r.mu.Unlock()
}
