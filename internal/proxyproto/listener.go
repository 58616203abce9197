package proxyproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/openconsult/openconsult/internal/acceptloop"
)

// DefaultTimeout bounds the wait for a trusted source's header.
const DefaultTimeout = 5 * time.Second

// Config configures a Listener.
type Config struct {
	// Trusted are the proxies whose headers are believed. A connection
	// from any other address that starts with a PROXY header is refused;
	// one that does not is served with its own address.
	Trusted []netip.Prefix
	// Required refuses a connection from a trusted proxy that sends no
	// header; without it, such a connection keeps the proxy's address.
	Required bool
	// Timeout bounds the wait for a trusted proxy's header; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Log receives refusals at debug level; never a client address. Nil
	// discards.
	Log *slog.Logger
}

// Listener accepts connections whose remote address is the client's that
// a trusted proxy names in a PROXY header, read before the connection is
// handed out, so that a slow proxy never holds up Accept. It owns one
// accept loop and one goroutine per trusted connection until its header
// is read.
type Listener struct {
	base  net.Listener
	cfg   Config
	conns chan net.Conn

	loop *acceptloop.Group // its context ends with the accept loop
}

// NewListener starts accepting base's connections. Close stops it.
func NewListener(base net.Listener, cfg Config) *Listener {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{base: base, cfg: cfg, conns: make(chan net.Conn), loop: acceptloop.NewGroup(base)}
	l.loop.Go(l.acceptLoop)
	return l
}

// Accept returns the next connection, past its header when it came from a
// trusted proxy.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.loop.Context().Done():
		return nil, net.ErrClosed
	}
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.base.Addr() }

// Close stops accepting, ends the connections not yet handed out and
// waits for the Listener's goroutines.
func (l *Listener) Close() error { return l.loop.Close() }

func (l *Listener) acceptLoop() {
	acceptloop.Run(l.loop.Context(), l.base, l.cfg.Log, "PROXY protocol listener", func(c net.Conn) {
		if !l.trusted(c.RemoteAddr()) {
			l.deliver(&untrustedConn{Conn: c})
			return
		}
		l.loop.Go(func() { l.readHeader(c) })
	})
	l.loop.Cancel()
}

func (l *Listener) trusted(a net.Addr) bool {
	ap, ok := addrPort(a)
	if !ok {
		return false
	}
	for _, p := range l.cfg.Trusted {
		if p.Contains(ap.Addr()) {
			return true
		}
	}
	return false
}

// readHeader reads a trusted proxy's header within the timeout and hands
// the connection out, or closes it.
func (l *Listener) readHeader(c net.Conn) {
	ctx, cancel := context.WithTimeout(l.loop.Context(), l.cfg.Timeout)
	defer cancel()
	_ = c.SetReadDeadline(time.Now().Add(l.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	h, rest, err := ReadHeader(c)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err == nil {
		err = c.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, ErrNoHeader) && !l.cfg.Required:
		l.deliver(&Conn{Conn: c, head: rest})
		return
	case errors.Is(err, ErrNoHeader):
		err = errors.New("a trusted proxy sent no PROXY header, which is required")
	}
	if err != nil {
		_ = c.Close()
		l.cfg.Log.Debug("PROXY protocol: connection refused", "err", err)
		return
	}
	conn := &Conn{Conn: c, head: rest}
	if !h.Local {
		conn.remote = net.TCPAddrFromAddrPort(unmap(h.Source))
		conn.local = net.TCPAddrFromAddrPort(unmap(h.Destination))
	}
	l.deliver(conn)
}

func (l *Listener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.loop.Context().Done():
		_ = c.Close()
	}
}

// ReadHeader reads r until it knows whether a PROXY header starts it, and
// returns the header with the bytes read past it (ErrNoHeader: every byte
// read). It never reads more than MaxV2 bytes, nor, on a header, much past
// it; bound how long it may wait with a deadline on r.
func ReadHeader(r io.Reader) (Header, []byte, error) {
	buf := make([]byte, 0, 64)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= MaxV2 {
				return Header{}, nil, errors.New("proxyproto: header longer than the limit")
			}
			buf = append(buf, make([]byte, min(2*cap(buf), MaxV2)-len(buf))...)[:len(buf)]
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, size, err := Parse(buf)
		switch {
		case err == nil:
			return h, buf[size:], nil
		case errors.Is(err, ErrNoHeader):
			return Header{}, buf, ErrNoHeader
		case !errors.Is(err, ErrIncomplete):
			return Header{}, nil, err
		case rerr != nil:
			return Header{}, nil, fmt.Errorf("proxyproto: header cut short: %w", rerr)
		}
	}
}

// Conn is a connection whose remote (and local) address is the one a
// trusted proxy named; Read returns the bytes read past the header first.
type Conn struct {
	net.Conn
	head          []byte
	remote, local net.Addr
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address named by the proxy, or the peer's.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr is the address the client reached, named by the proxy, or
// this end's.
func (c *Conn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

// CloseWrite half-closes the underlying TCP connection.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// untrustedConn is a connection from a peer that is not a trusted proxy:
// its first bytes must not be a PROXY header, which only a client forging
// its address would send.
type untrustedConn struct {
	net.Conn
	checked bool
	head    []byte
}

var errForged = errors.New("proxyproto: PROXY header from an untrusted address refused")

func (c *untrustedConn) Read(p []byte) (int, error) {
	if !c.checked {
		_, head, err := ReadHeader(c.Conn)
		if !errors.Is(err, ErrNoHeader) {
			// A header, or its signature's first bytes then silence.
			_ = c.Conn.Close()
			return 0, errForged
		}
		c.checked, c.head = true, head
	}
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	return unmap(ap), ap.IsValid()
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
