package relay

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"
)

const (
	// inboundMTU is pion/turn's read buffer; it drops larger frames, and so
	// does the gate.
	inboundMTU = 1600
	// firstFrameTimeout bounds the TLS handshake and the first request of a
	// connection, so that idle connections cannot pile up.
	firstFrameTimeout = 15 * time.Second
	stunCookie        = 0x2112A442
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
// listener but not the connections it accepted), and rides out transient
// accept errors such as EMFILE, on which pion/turn would stop accepting for
// good.
type gatedListener struct {
	net.Listener
	s       *Server
	stopped func() // the accept loop has ended

	mu      sync.Mutex
	conns   map[*gatedConn]struct{}
	closing chan struct{}
	closed  bool
	once    sync.Once
}

func newGatedListener(l net.Listener, s *Server, stopped func()) *gatedListener {
	return &gatedListener{Listener: l, s: s, stopped: stopped, conns: map[*gatedConn]struct{}{}, closing: make(chan struct{})}
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
		gc := &gatedConn{Conn: c, l: l, in: inspector{s: l.s}, buf: make([]byte, inboundMTU)}
		_ = c.SetReadDeadline(time.Now().Add(l.s.cfg.firstFrameTimeout))
		l.mu.Lock()
		if l.closed {
			_ = c.Close() // pion still gets it, reads an error and lets it go
		}
		l.conns[gc] = struct{}{}
		l.s.loops.Add(1)
		l.mu.Unlock()
		return gc, nil
	}
}

// Close closes the listener and ends every connection it accepted.
func (l *gatedListener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.closing)
		for c := range l.conns {
			_ = c.Conn.Close()
		}
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// gatedConn is one TCP or TLS client connection as pion/turn sees it: a
// stream that yields only frames that passed the gate.
type gatedConn struct {
	net.Conn
	l  *gatedListener
	in inspector

	buf     []byte // received bytes buf[r:w] not yet framed
	r, w    int
	skip    int    // bytes left of an oversized frame being dropped
	pending []byte // the rest of a frame pion has not read yet
	started bool
	once    sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		f, err := c.next()
		if err != nil {
			return 0, err
		}
		if !c.started {
			c.started = true
			_ = c.Conn.SetReadDeadline(time.Time{})
		}
		if resp := c.in.inspect(f); resp != nil {
			if _, err := c.Conn.Write(resp); err != nil {
				return 0, err
			}
			continue
		}
		c.pending = f
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
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
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.s.loops.Done()
	})
	return err
}
