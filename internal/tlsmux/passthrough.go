package tlsmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/acceptloop"
	"github.com/openconsult/openconsult/internal/proxyproto"
)

// PassConfig configures a Passthrough.
type PassConfig struct {
	// TLS holds the TURN name's certificate; the Passthrough terminates
	// only TURN connections with it.
	TLS *tls.Config
	// Backend is the "host:port" of the HTTPS server that receives every
	// other connection still encrypted, ClientHello included, and answers
	// its handshake with its own certificate.
	Backend string
	// IsTURNName reports whether a server name is the relay's, for clients
	// that offer no ALPN (see ByHello).
	IsTURNName func(name string) bool
	// Timeout bounds the ClientHello, the TURN handshake and the dial to
	// Backend; zero means DefaultTimeout.
	Timeout time.Duration
	// PerAddress is the most connections one client address (an IPv6 one
	// by its /64) may have passed to the backend at once; more are closed.
	// Without ProxyHeader the backend sees every client at the
	// Passthrough's address, so its own per-address limits cannot tell
	// them apart. 0 means no limit.
	PerAddress int
	// ProxyHeader sends each connection passed to the backend a PROXY
	// protocol version 2 header first, naming the client's address and
	// the address it reached, for a backend that trusts this one's.
	ProxyHeader bool
	// Log receives accept and backend errors; never a client address. Nil
	// discards.
	Log *slog.Logger
}

// Passthrough shares a TLS port between a TURN relay and an HTTPS server
// that terminates its own TLS: it reads each connection's ClientHello,
// completes the handshake of TURN connections (ByHello) with the TURN
// certificate and hands them to its TURN listener, and passes every other
// connection, untouched, to the backend. Each name keeps its own
// certificate and private key; the backend sees the Passthrough's address
// as the client's, unless it reads the PROXY header (ProxyHeader).
type Passthrough struct {
	base   net.Listener
	cfg    PassConfig
	turn   *child
	dialer net.Dialer
	// loop's context ends with Close, or when the TURN listener is closed.
	loop *acceptloop.Group

	mu     sync.Mutex
	passed map[netip.Addr]int // connections at the backend, by client key
}

// NewPassthrough starts routing base's connections. Close stops it, and
// ends the connections it is passing to the backend; closing the TURN
// listener closes it too.
func NewPassthrough(base net.Listener, cfg PassConfig) (*Passthrough, error) {
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil) {
		return nil, errors.New("tlsmux: no certificate")
	}
	if _, _, err := net.SplitHostPort(cfg.Backend); err != nil {
		return nil, errors.New("tlsmux: backend must be host:port")
	}
	if cfg.IsTURNName == nil {
		cfg.IsTURNName = func(string) bool { return false }
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Passthrough{base: base, cfg: cfg, loop: acceptloop.NewGroup(base), dialer: net.Dialer{Timeout: cfg.Timeout}, passed: map[netip.Addr]int{}}
	p.turn = newChild(base.Addr(), func() { p.loop.Cancel(); _ = p.base.Close() })
	p.loop.Go(p.acceptLoop)
	return p, nil
}

// TURN returns the listener of the TURN connections, past their handshake.
func (p *Passthrough) TURN() net.Listener { return p.turn }

// Addr is the shared address.
func (p *Passthrough) Addr() net.Addr { return p.base.Addr() }

// Close closes the shared listener, ends every connection not handed to
// the relay and waits for the Passthrough's goroutines.
func (p *Passthrough) Close() error {
	err := p.loop.Stop()
	p.turn.close()
	p.loop.Wait()
	return err
}

func (p *Passthrough) acceptLoop() {
	acceptloop.Run(p.loop.Context(), p.base, p.cfg.Log, "shared TLS port", func(c net.Conn) {
		p.loop.Go(func() { p.route(c) })
	})
}

// route reads c's ClientHello and hands c to the relay or the backend.
func (p *Passthrough) route(raw net.Conn) {
	ctx, cancel := context.WithTimeout(p.loop.Context(), p.cfg.Timeout)
	defer cancel()
	_ = raw.SetDeadline(time.Now().Add(p.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	hello, head, err := PeekHello(raw)
	if err != nil {
		stop()
		_ = raw.Close()
		p.cfg.Log.Debug("shared TLS port: connection dropped before its ClientHello", "err", err)
		return
	}
	replay := &replayConn{Conn: raw, head: head}
	if ByHello(hello, p.cfg.IsTURNName) == TURN {
		tc := tls.Server(replay, p.cfg.TLS)
		err := tc.HandshakeContext(ctx)
		if err == nil {
			err = clearDeadline(raw, stop)
		}
		if err != nil {
			stop()
			_ = raw.Close()
			p.cfg.Log.Debug("shared TLS port: TURN handshake failed", "err", err)
			return
		}
		p.turn.deliver(tc)
		return
	}
	key, ok := p.take(raw.RemoteAddr())
	if !ok {
		stop()
		_ = raw.Close()
		p.cfg.Log.Debug("shared TLS port: connection over the per-address limit closed")
		return
	}
	defer p.release(key)
	backend, err := p.dialer.DialContext(ctx, "tcp", p.cfg.Backend)
	if err == nil && p.cfg.ProxyHeader {
		err = sendProxyHeader(ctx, backend, raw)
	}
	if err == nil {
		err = clearDeadline(raw, stop)
	}
	if err != nil {
		stop()
		_ = raw.Close()
		if backend != nil {
			_ = backend.Close()
		}
		p.cfg.Log.Warn("shared TLS port: HTTPS backend unreachable", "backend", p.cfg.Backend, "err", err)
		return
	}
	p.pipe(replay, backend)
}

// sendProxyHeader writes the PROXY protocol header of client to backend
// within ctx's deadline.
func sendProxyHeader(ctx context.Context, backend, client net.Conn) error {
	src, ok1 := tcpAddrPort(client.RemoteAddr())
	dst, ok2 := tcpAddrPort(client.LocalAddr())
	if !ok1 || !ok2 {
		return errors.New("PROXY header: not a TCP connection")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = backend.SetWriteDeadline(dl)
	}
	if _, err := backend.Write(proxyproto.AppendV2(nil, src, dst)); err != nil {
		return fmt.Errorf("PROXY header: %w", err)
	}
	return backend.SetWriteDeadline(time.Time{})
}

func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return ta.AddrPort(), true
}

// take counts a connection from addr passed to the backend, or reports
// that its address is at the limit.
func (p *Passthrough) take(addr net.Addr) (netip.Addr, bool) {
	var key netip.Addr
	if ta, ok := addr.(*net.TCPAddr); ok {
		key = ta.AddrPort().Addr().Unmap()
		if key.Is6() {
			key = netip.PrefixFrom(key, 64).Masked().Addr()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.PerAddress > 0 && p.passed[key] >= p.cfg.PerAddress {
		return key, false
	}
	p.passed[key]++
	return key, true
}

func (p *Passthrough) release(key netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.passed[key]--; p.passed[key] <= 0 {
		delete(p.passed, key)
	}
}

// pipe copies both ways until both directions end, or Close.
func (p *Passthrough) pipe(client, backend net.Conn) {
	stop := context.AfterFunc(p.loop.Context(), func() {
		_ = client.Close()
		_ = backend.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Go(func() { half(backend, client) })
	half(client, backend)
	wg.Wait()
	_ = client.Close()
	_ = backend.Close()
}

// replayConn is a connection whose first bytes were read to route it; Read
// returns them again first.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying TCP connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
