package tlsmux

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/acceptloop"
)

// DefaultTimeout bounds the TLS handshake and the wait for the first bytes
// together, so that a silent connection cannot hold a goroutine.
const DefaultTimeout = 10 * time.Second

// Config configures a Mux.
type Config struct {
	// TLS holds the certificate of both services. The Mux uses a clone
	// whose NextProtos also offers "stun.turn"; give "h2" and "http/1.1"
	// in it for HTTP/2, as for an http.Server.
	TLS *tls.Config
	// Timeout bounds a connection's handshake and first bytes; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Log receives accept errors; never a client address. Nil discards.
	Log *slog.Logger
}

// Mux accepts TLS connections on one listener and hands each, past its
// handshake, to its HTTP or its TURN listener. It owns one accept loop and
// one goroutine per connection until the connection is handed over.
type Mux struct {
	base    net.Listener
	tls     *tls.Config
	timeout time.Duration
	log     *slog.Logger

	http, turn *child

	// loop's context ends with Close, or once both listeners are closed.
	loop *acceptloop.Group
}

// New starts splitting base's connections. Close stops it. Closing the
// HTTP listener stops it accepting; closing both listeners closes it.
func New(base net.Listener, cfg Config) (*Mux, error) {
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil) {
		return nil, errors.New("tlsmux: no certificate")
	}
	t := cfg.TLS.Clone()
	if !slices.Contains(t.NextProtos, ALPNTURN) {
		t.NextProtos = append(t.NextProtos, ALPNTURN)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &Mux{base: base, tls: t, timeout: cfg.Timeout, log: cfg.Log, loop: acceptloop.NewGroup(base)}
	m.http, m.turn = newChild(base.Addr(), m.childClosed), newChild(base.Addr(), m.childClosed)
	m.loop.Go(m.acceptLoop)
	return m, nil
}

// HTTP returns the listener of the HTTPS connections. Connections that
// negotiated h2 or http/1.1 are *tls.Conn, so that an http.Server's Serve
// speaks HTTP/2 on them; others carry the bytes read to classify them.
func (m *Mux) HTTP() net.Listener { return m.http }

// TURN returns the listener of the TURN-over-TLS connections.
func (m *Mux) TURN() net.Listener { return m.turn }

// Addr is the shared address.
func (m *Mux) Addr() net.Addr { return m.base.Addr() }

// Close closes the shared listener, ends the connections not yet handed
// over and waits for the Mux's goroutines.
func (m *Mux) Close() error {
	err := m.loop.Stop()
	m.http.close()
	m.turn.close()
	m.loop.Wait()
	return err
}

func (m *Mux) acceptLoop() {
	acceptloop.Run(m.loop.Context(), m.base, m.log, "shared TLS port", func(c net.Conn) {
		m.loop.Go(func() { m.route(c) })
	})
}

// route completes c's handshake, classifies it and hands it over, or
// closes it.
func (m *Mux) route(raw net.Conn) {
	conn, kind, err := m.open(raw)
	if err != nil {
		_ = raw.Close()
		m.log.Debug("shared TLS port: connection dropped before it was classified", "err", err)
		return
	}
	target := m.http
	if kind == TURN {
		target = m.turn
	}
	target.deliver(conn)
}

// open runs the handshake and reads the first bytes, both within the
// timeout and cut short by Close.
func (m *Mux) open(raw net.Conn) (net.Conn, Kind, error) {
	ctx, cancel := context.WithTimeout(m.loop.Context(), m.timeout)
	defer cancel()
	_ = raw.SetDeadline(time.Now().Add(m.timeout))
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	tc := tls.Server(raw, m.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, Undecided, err
	}
	if kind := ByALPN(tc.ConnectionState().NegotiatedProtocol); kind != Undecided {
		return tc, kind, clearDeadline(raw, stop)
	}
	var head [PeekLen]byte
	n, kind := 0, Undecided
	for kind == Undecided {
		k, err := tc.Read(head[n:])
		n += k
		if kind = Classify(head[:n]); kind == Undecided && err != nil {
			return nil, Undecided, err
		}
	}
	return &Conn{Conn: tc, head: head[:n]}, kind, clearDeadline(raw, stop)
}

// clearDeadline leaves the connection's deadlines to its new owner, unless
// the timeout or Close came first.
func clearDeadline(raw net.Conn, stop func() bool) error {
	if !stop() {
		return context.DeadlineExceeded
	}
	return raw.SetDeadline(time.Time{})
}

// Conn is a TLS connection whose first bytes were read to classify it;
// Read returns them again first.
type Conn struct {
	*tls.Conn
	head []byte
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// childClosed stops the shared port from accepting once the HTTP listener
// is closed (the site is shutting down): a new client is then refused
// rather than reset after its handshake, and connections already being
// classified still reach the TURN listener. Once both listeners are
// closed it ends those too. It does not wait for the Mux's goroutines,
// which may be delivering to the other listener: Mux.Close does.
func (m *Mux) childClosed() {
	select {
	case <-m.http.closed:
	default:
		return
	}
	_ = m.base.Close()
	select {
	case <-m.turn.closed:
	default:
		return
	}
	m.loop.Cancel()
}

// child is the listener of one kind of connection.
type child struct {
	addr    net.Addr
	onClose func()
	conns   chan net.Conn
	closed  chan struct{}
	once    sync.Once
}

func newChild(addr net.Addr, onClose func()) *child {
	return &child{addr: addr, onClose: onClose, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (c *child) deliver(conn net.Conn) {
	select {
	case c.conns <- conn:
	case <-c.closed:
		_ = conn.Close()
	}
}

func (c *child) Accept() (net.Conn, error) {
	select {
	case conn := <-c.conns:
		return conn, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

func (c *child) close() { c.once.Do(func() { close(c.closed) }) }

// Close stops this listener and tells its owner.
func (c *child) Close() error {
	c.close()
	c.onClose()
	return nil
}

func (c *child) Addr() net.Addr { return c.addr }
