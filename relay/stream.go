package relay

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// inboundMTU is pion/turn's read buffer; it drops larger frames, and so
	// does the gate.
	inboundMTU = 1600
	// firstFrameTimeout bounds the TLS handshake and the first request of a
	// connection, so that idle connections cannot pile up.
	firstFrameTimeout = 15 * time.Second
	// noAllocationTimeout closes a connection that holds no allocation, so
	// that a client cannot keep one open with Binding requests alone.
	noAllocationTimeout = 30 * time.Second
	stunCookie          = 0x2112A442
)

var errNotTURNFrame = errors.New("relay: stream carries neither STUN nor ChannelData")

// frameLen returns the length of the TURN frame at the start of b, or 0
// when more bytes are needed to know it. On a stream a frame is a STUN
// message or a ChannelData message padded to four bytes (RFC 8656, 12.5).
func frameLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, nil
	}
	switch b[0] >> 6 {
	case 0: // STUN
		if len(b) < 8 {
			return 0, nil
		}
		if binary.BigEndian.Uint32(b[4:8]) != stunCookie {
			return 0, errNotTURNFrame
		}
		return 20 + int(binary.BigEndian.Uint16(b[2:4])), nil
	case 1: // ChannelData, channels 0x4000-0x7FFF
		return 4 + (int(binary.BigEndian.Uint16(b[2:4]))+3)&^3, nil
	}
	return 0, errNotTURNFrame
}

// gatedListener hands pion/turn connections whose frames pass the gate,
// keeps track of them so that Close can end them (pion/turn closes its
// listener but not the connections it accepted) and so that allocation
// events reach them, refuses a connection over the per-address limit, and
// rides out transient accept errors such as EMFILE, on which pion/turn
// would stop accepting for good.
type gatedListener struct {
	net.Listener
	s       *Server
	stopped func() // the accept loop has ended

	mu      sync.Mutex
	conns   map[string]*gatedConn // by streamKey
	closing chan struct{}
	closed  bool
	once    sync.Once
}

func newGatedListener(l net.Listener, s *Server, stopped func()) *gatedListener {
	return &gatedListener{Listener: l, s: s, stopped: stopped, conns: map[string]*gatedConn{}, closing: make(chan struct{})}
}

// streamKey names a connection as pion/turn's events do: by the client's
// address and the relay's.
func streamKey(remote, local net.Addr) string {
	if remote == nil || local == nil {
		return ""
	}
	return remote.String() + "|" + local.String()
}

func (l *gatedListener) Accept() (net.Conn, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.once.Do(l.stopped)
				return nil, err
			}
			select {
			case <-time.After(delay):
				delay = min(2*delay, time.Second)
				continue
			case <-l.closing:
				l.once.Do(l.stopped)
				return nil, err
			}
		}
		release, ok := l.s.streams.acquire(c.RemoteAddr())
		if !ok {
			_ = c.Close()
			l.s.streamClosed(closeAddressLimit)
			continue
		}
		now := time.Now()
		gc := &gatedConn{Conn: c, l: l, in: inspector{s: l.s, stream: true}, buf: make([]byte, inboundMTU),
			key: streamKey(c.RemoteAddr(), c.LocalAddr()), release: release, idleSince: now}
		_ = c.SetReadDeadline(now.Add(l.s.cfg.firstFrameTimeout))
		l.mu.Lock()
		if l.closed {
			_ = c.Close() // pion still gets it, reads an error and lets it go
		}
		l.conns[gc.key] = gc
		l.s.loops.Add(1)
		l.mu.Unlock()
		return gc, nil
	}
}

// setAllocated tells the connection named key whether it holds an
// allocation; it reports false when no such connection is open here.
func (l *gatedListener) setAllocated(key string, allocated bool) bool {
	l.mu.Lock()
	c := l.conns[key]
	l.mu.Unlock()
	if c == nil {
		return false
	}
	c.setAllocated(allocated)
	return true
}

// Close closes the listener and ends every connection it accepted.
func (l *gatedListener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.closing)
		for _, c := range l.conns {
			_ = c.Conn.Close()
		}
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// gatedConn is one TCP or TLS client connection as pion/turn sees it: a
// stream that yields only frames that passed the gate.
//
// Its read deadline keeps connections from piling up: the TLS handshake and
// the first request must come within the first-frame timeout, and a
// connection without an allocation ends at the no-allocation timeout after
// it was accepted or lost its allocation, however busy it is. A connection
// with an allocation has no deadline; the allocation's lifetime bounds it.
type gatedConn struct {
	net.Conn
	l       *gatedListener
	in      inspector
	key     string // streamKey
	release func() // gives back the per-address count

	buf     []byte // received bytes buf[r:w] not yet framed
	r, w    int
	skip    int    // bytes left of an oversized frame being dropped
	pending []byte // the rest of a frame pion has not read yet
	once    sync.Once

	// binding is set by Read when a ConnectionBind request passes to pion;
	// raw when pion has answered it with success (RFC 6062, 5.4): from
	// then on the connection carries the bytes of one TCP connection with
	// a peer, not TURN frames.
	binding, raw atomic.Bool

	mu        sync.Mutex
	started   bool      // the first frame has arrived; written by Read only
	allocated bool      // pion holds an allocation for this connection
	idleSince time.Time // accepted, or the allocation ended
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 && c.raw.Load() {
		return c.readRaw(p)
	}
	for len(c.pending) == 0 {
		f, err := c.next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.timedOut()
			}
			return 0, err
		}
		if !c.started {
			c.mu.Lock()
			c.started = true
			c.armLocked()
			c.mu.Unlock()
		}
		if resp := c.in.inspect(f); resp != nil {
			if _, err := c.Conn.Write(resp); err != nil {
				return 0, err
			}
			continue
		}
		if isConnectionBind(f) {
			c.binding.Store(true)
		}
		c.pending = f
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write passes pion's answers on, and turns the connection raw once pion
// has accepted a ConnectionBind: pion writes its success response before
// it starts copying between the connection and the peer's.
func (c *gatedConn) Write(p []byte) (int, error) {
	if c.binding.Load() && isConnectionBindSuccess(p) {
		c.binding.Store(false)
		c.mu.Lock()
		c.allocated = true // a data connection lives as long as its peer's
		c.armLocked()
		c.mu.Unlock()
		c.raw.Store(true)
	}
	return c.Conn.Write(p)
}

// readRaw returns the bytes of a data connection: those read past the
// ConnectionBind first, then the connection's own.
func (c *gatedConn) readRaw(p []byte) (int, error) {
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	return c.Conn.Read(p)
}

func isConnectionBind(f []byte) bool {
	return len(f) >= 20 && f[0] == 0x00 && f[1] == 0x0b
}

// isConnectionBindSuccess reports whether p is a ConnectionBind success
// response (method 0x00b, class 0b10).
func isConnectionBindSuccess(p []byte) bool {
	return len(p) >= 20 && p[0] == 0x01 && p[1] == 0x0b
}

// setAllocated records whether pion holds an allocation for the
// connection and moves the read deadline to match.
func (c *gatedConn) setAllocated(allocated bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.allocated && !allocated {
		c.idleSince = time.Now()
	}
	c.allocated = allocated
	if c.started {
		c.armLocked()
	}
}

// armLocked sets the read deadline after the first frame; c.mu is held.
func (c *gatedConn) armLocked() {
	if c.allocated {
		_ = c.Conn.SetReadDeadline(time.Time{})
		return
	}
	_ = c.Conn.SetReadDeadline(c.idleSince.Add(c.l.s.cfg.noAllocationTimeout))
}

// timedOut counts the end of a connection at its deadline.
func (c *gatedConn) timedOut() {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started {
		c.l.s.streamClosed(closeNoAllocation)
	} else {
		c.l.s.streamClosed(closeNoRequest)
	}
}

// next returns the next whole frame; it stays valid until the next call.
func (c *gatedConn) next() ([]byte, error) {
	for {
		if c.skip == 0 {
			n, err := frameLen(c.buf[c.r:c.w])
			switch {
			case err != nil:
				return nil, err
			case n >= len(c.buf):
				c.skip = n
			case n > 0 && c.w-c.r >= n:
				f := c.buf[c.r : c.r+n]
				c.r += n
				return f, nil
			}
		}
		if c.skip > 0 {
			d := min(c.skip, c.w-c.r)
			c.skip -= d
			c.r += d
			if c.skip == 0 {
				continue
			}
		}
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		// A frame shorter than the buffer always fits once compacted, so
		// there is room to read into.
		n, err := c.Conn.Read(c.buf[c.w:])
		c.w += n
		if n == 0 && err != nil {
			return nil, err // with n > 0, frame those bytes first; the error comes back
		}
	}
}

// Close is called by pion/turn when its loop for the connection ends.
func (c *gatedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns[c.key] == c {
			delete(c.l.conns, c.key)
		}
		c.l.mu.Unlock()
		if c.release != nil {
			c.release()
		}
		c.l.s.loops.Done()
	})
	return err
}
