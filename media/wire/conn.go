// Package wire is the media node's own WebRTC transport for one
// participant: ICE as a lite agent, DTLS, and SRTP, run on the datagrams
// the node's shared UDP port routes to the connection, with no goroutine
// of its own once the DTLS handshake is done and no hand-off between
// goroutines on the way from the socket to the handler, or from a writer
// to the socket.
//
// pion's PeerConnection runs some eleven goroutines per connection (the
// ICE agent's task loop, connectivity checks and candidate reader, a
// demultiplexer, DTLS's state machine and record reader, an SRTP and an
// SRTCP reader, two loops accepting new streams) and hands every packet
// from one to the next three times. Here the goroutine that read a
// datagram answers it if it is a binding request, queues it for the DTLS
// connection if it is a DTLS record, and decrypts it in place and hands
// it to the Handler if it is SRTP or SRTCP; a writer encrypts and sends
// on its own goroutine. pion's DTLS connection keeps its goroutines (the
// handshake's state machine and the record reader) for alerts and
// retransmitted flights.
package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// Handler receives what a connection decrypted, on the goroutine that
// delivered it, one packet at a time per connection. p is the whole
// packet, valid until the call returns.
type Handler interface {
	RTP(p []byte, h *rtp.Header)
	RTCP(p []byte) // a compound RTCP packet
}

// State is where a connection stands.
type State int

const (
	StateNew          State = iota
	StateConnected          // a pair selected and the DTLS handshake done: media flows
	StateDisconnected       // no consent check for DisconnectedAfter; media still flows if it comes
	StateFailed             // the handshake failed, or consent expired
	StateClosed             // closed by the node or by the remote side's close_notify
)

func (s State) String() string {
	return [...]string{"new", "connected", "disconnected", "failed", "closed"}[s]
}

// Config configures a connection.
type Config struct {
	Local       Credentials // the node's ICE credentials for this connection
	Certificate Certificate
	LocalAddr   net.Addr
	// Send writes one datagram to addr from the socket the connection's
	// datagrams arrive on. It must not keep b.
	Send    func(b []byte, to netip.AddrPort) error
	Handler Handler
	// OnState learns of every change of state, on the goroutine that
	// made it; it must not block.
	OnState          func(State)
	Log              *slog.Logger
	HandshakeTimeout time.Duration // 30 s if zero
	Now              func() time.Time
}

// Conn is one participant's transport.
type Conn struct {
	cfg  Config
	ice  iceLite
	link *dtlsLink

	mu      sync.Mutex
	state   State
	started bool
	closed  bool // Close ran
	cancel  context.CancelFunc
	dtls    *dtls.Conn
	valid   []netip.AddrPort // addresses that sent a valid check, newest last
	done    chan struct{}    // the handshake goroutine ended; nil before Start

	ready atomic.Bool // the SRTP contexts are set
	rx    struct {
		sync.Mutex // one deliverer at a time: the UDP port's and an ICE-TCP connection's
		ctx        *srtp.Context
		rtp        rtp.Header
		rtcp       rtcp.Header
	}
	tx struct {
		sync.Mutex
		ctx   *srtp.Context
		plain []byte
		out   []byte
		hdr   rtp.Header
		rtcp  rtcp.Header
	}
}

// maxValid bounds the addresses a connection remembers as checked.
const maxValid = 8

// ErrNotConnected is returned by writes before the connection is
// connected and after it closed.
var ErrNotConnected = errors.New("wire: not connected")

// New makes a connection that answers checks for cfg.Local at once;
// Start begins DTLS once the remote description is known.
func New(cfg Config) (*Conn, error) {
	if !cfg.Local.Valid() {
		return nil, errors.New("wire: invalid local ICE credentials")
	}
	if cfg.Send == nil || cfg.Handler == nil || cfg.Certificate.TLS.PrivateKey == nil {
		return nil, errors.New("wire: Send, Handler and Certificate are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OnState == nil {
		cfg.OnState = func(State) {}
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Conn{cfg: cfg}
	c.ice.local, c.ice.now = cfg.Local, cfg.Now
	c.link = newDTLSLink(cfg.LocalAddr, c.sendDTLS, c.dtlsClosed)
	c.tx.plain = make([]byte, 0, 1500)
	c.tx.out = make([]byte, 0, 1500+32)
	return c, nil
}

// Start applies the remote side's transport parameters and begins the
// DTLS handshake: as the client if the remote side took setup:passive,
// else as the server. fingerprints are the remote description's
// a=fingerprint values; the remote certificate must match one.
func (c *Conn) Start(remote Credentials, fingerprints []string, client bool) error {
	if remote.Ufrag == "" {
		return errors.New("wire: the remote description has no ICE username fragment")
	}
	if len(fingerprints) == 0 {
		return errors.New("wire: the remote description has no certificate fingerprint")
	}
	c.ice.setCredentials(c.cfg.Local, remote)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return errors.New("wire: already started")
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go c.handshake(ctx, client, fingerprints) // ends with the handshake; Close waits for it
	return nil
}

// Restart takes new ICE credentials on both sides (an ICE restart). The
// selected pair stays until the remote agent nominates another.
func (c *Conn) Restart(local, remote Credentials) error {
	if !local.Valid() || remote.Ufrag == "" {
		return errors.New("wire: invalid ICE credentials for a restart")
	}
	c.ice.setCredentials(local, remote)
	return nil
}

func (c *Conn) handshake(ctx context.Context, client bool, fingerprints []string) {
	defer close(c.done)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	d, err := handshake(ctx, c.link, c.cfg.Certificate.TLS, client, fingerprints)
	if err == nil {
		var rx, tx *srtp.Context
		if rx, tx, err = srtpContexts(d, client); err != nil {
			_ = d.Close()
		} else {
			c.rx.Lock()
			c.rx.ctx = rx
			c.rx.Unlock()
			c.tx.Lock()
			c.tx.ctx = tx
			c.tx.Unlock()
			c.ready.Store(true)
		}
	}
	c.mu.Lock()
	closed := c.closed
	if err == nil && !closed {
		c.dtls = d
	}
	c.mu.Unlock()
	switch {
	case closed:
		if d != nil {
			_ = d.Close()
		}
	case err != nil:
		c.cfg.Log.Info("wire: DTLS handshake failed", "err", err)
		c.setState(StateFailed)
	default:
		c.setState(StateConnected)
	}
}

// setState moves the connection to s unless it is closed or already in
// s, and tells OnState.
func (c *Conn) setState(s State) {
	c.mu.Lock()
	if c.state == s || c.state == StateClosed || (c.state == StateFailed && s != StateClosed) {
		c.mu.Unlock()
		return
	}
	c.state = s
	c.mu.Unlock()
	c.cfg.OnState(s)
}

// State is the connection's state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Remote is the selected remote address; ok is false before the remote
// agent nominated a pair.
func (c *Conn) Remote() (addr netip.AddrPort, ok bool) {
	addr, _, ok = c.ice.pair()
	return addr, ok
}

// CheckConsent updates the state from the time of the last consent
// check: the Port a connection is routed on calls it every second.
func (c *Conn) CheckConsent() State {
	_, last, ok := c.ice.pair()
	st := c.State()
	if !ok || (st != StateConnected && st != StateDisconnected) {
		return st
	}
	switch quiet := c.cfg.Now().Sub(last); {
	case quiet >= FailedAfter:
		c.setState(StateFailed)
	case quiet >= DisconnectedAfter:
		c.setState(StateDisconnected)
	default:
		c.setState(StateConnected)
	}
	return c.State()
}

// Close ends the connection: the DTLS connection sends close_notify,
// and the handshake, if under way, stops. It waits for the goroutines
// of the handshake and of the DTLS connection. Call it once the
// connection is closed by the remote side too.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	tell := c.state != StateClosed
	c.state = StateClosed
	cancel, done, d := c.cancel, c.done, c.dtls
	c.mu.Unlock()
	c.ready.Store(false)
	if cancel != nil {
		cancel()
		<-done
	}
	var err error
	if d != nil {
		err = d.Close()
	}
	_ = c.link.Close()
	if tell {
		c.cfg.OnState(StateClosed)
	}
	return err
}

// dtlsClosed learns that the DTLS connection closed its link, on the
// remote side's close_notify (or on Close, which already said so). It
// runs on the DTLS connection's own goroutine, which Close waits for,
// so it only tells OnState; the owner then calls Close. During the
// handshake the handshake's error says the connection failed instead.
func (c *Conn) dtlsClosed() {
	if !c.ready.Load() {
		return
	}
	c.mu.Lock()
	tell := c.state != StateClosed
	c.state = StateClosed
	c.mu.Unlock()
	c.ready.Store(false)
	if tell {
		c.cfg.OnState(StateClosed)
	}
}

func (c *Conn) sendDTLS(b []byte) error {
	to, ok := c.Remote()
	if !ok {
		c.mu.Lock()
		if len(c.valid) > 0 {
			to, ok = c.valid[len(c.valid)-1], true
		}
		c.mu.Unlock()
	}
	if !ok {
		return fmt.Errorf("wire: DTLS before any valid ICE check: %w", ErrNotConnected)
	}
	return c.cfg.Send(b, to)
}
