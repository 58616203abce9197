package sfulink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/media"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL of the node's link listener, wss://host:7443/.
	URL string
	// TLS holds the client certificate and the CA of nodes' certificates
	// (see ClientTLS).
	TLS *tls.Config
	Log *slog.Logger
	// Heartbeat is the ping interval; 0 for DefaultHeartbeat.
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts, which doubles after each failure; 0 for 200ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// ReplyTimeout bounds, whatever the caller's context allows, the wait
	// for the node's reply to a join or record request, and for the end
	// of a recording once stopped; 0 for DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// Metrics counts the node's floods (NewMetrics); nil counts nothing.
	Metrics *Metrics
}

// DefaultReplyTimeout is how long a node may take to answer a join or a
// record request, or to end a stopped recording, before signal gives up
// on it.
const DefaultReplyTimeout = 15 * time.Second

// Client is a media.Node backed by one remote node. It keeps one link to
// the node, reconnecting with backoff; when the link drops, every session
// on it gets Events.Closed with an error wrapping media.ErrUnavailable, so
// that signal can move those consults.
type Client struct {
	url        string
	dialer     websocket.Dialer
	log        *slog.Logger
	heartbeat  time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	// replyTimeout bounds the wait for a join's or a record's reply, and
	// for a stopped recording's end.
	replyTimeout time.Duration
	metrics      *Metrics

	cancel      context.CancelFunc
	done        chan struct{} // the connection loop ended
	kick        chan struct{} // a Join wants a connection now
	settled     chan struct{} // closed after the first connection attempt
	settledOnce sync.Once
	events      sync.WaitGroup // sessions' event goroutines

	mu      sync.Mutex
	link    *clientLink // nil while down
	lastErr error
	load    media.Load
	closed  bool
}

// NewClient starts connecting to the node at cfg.URL and returns at once;
// Join waits for the first connection attempt. The client stops when ctx
// ends or Close is called.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "wss" || u.Host == "" {
		return nil, fmt.Errorf("sfulink: node URL %q: want wss://host:port/", cfg.URL)
	}
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetClientCertificate == nil) {
		return nil, errors.New("sfulink: a client certificate is needed to reach a node")
	}
	c := &Client{
		url: cfg.URL, log: cfg.Log, heartbeat: cfg.Heartbeat,
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff, replyTimeout: cfg.ReplyTimeout, metrics: cfg.Metrics,
		done: make(chan struct{}), kick: make(chan struct{}, 1), settled: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.replyTimeout <= 0 {
		c.replyTimeout = DefaultReplyTimeout
	}
	if c.minBackoff <= 0 {
		c.minBackoff = 200 * time.Millisecond
	}
	if c.maxBackoff < c.minBackoff {
		c.maxBackoff = max(10*time.Second, c.minBackoff)
	}
	c.dialer = websocket.Dialer{
		TLSClientConfig:  cfg.TLS.Clone(),
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	ctx, c.cancel = context.WithCancel(ctx)
	context.AfterFunc(ctx, c.stopLink)
	go c.run(ctx)
	return c, nil
}

// replyWait is the bound on a reply (see ClientConfig.ReplyTimeout).
func (c *Client) replyWait() time.Duration {
	if c.replyTimeout <= 0 {
		return DefaultReplyTimeout
	}
	return c.replyTimeout
}

// URL is the node's link URL.
func (c *Client) URL() string { return c.url }

// Up reports whether the link to the node is established.
func (c *Client) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link != nil
}

// Load implements media.Node: the last load the node reported.
func (c *Client) Load() media.Load {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load
}

func (c *Client) setLoad(l media.Load) {
	c.mu.Lock()
	c.load = l
	c.mu.Unlock()
}

// Close stops the client: the link closes, its sessions get Closed, and
// Close returns once every goroutine of the client has ended.
func (c *Client) Close() {
	c.cancel()
	<-c.done
	c.events.Wait()
}

func (c *Client) stopLink() {
	c.mu.Lock()
	c.closed = true
	l := c.link
	c.mu.Unlock()
	if l != nil {
		// A close frame tells the node the link ends on purpose; it
		// closes the link's sessions either way.
		l.ep.drain(time.Second)
	}
}

// run keeps a link to the node until ctx ends.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	backoff := c.minBackoff
	for {
		l, err := c.dial(ctx)
		if err == nil {
			backoff = c.minBackoff
			c.log.Info("sfulink connected", "node", c.url)
			err = l.ep.run(l.handle, l.handleMedia)
			c.mu.Lock()
			c.link, c.lastErr = nil, err
			c.mu.Unlock()
			if errors.Is(err, websocket.ErrReadLimit) {
				c.metrics.flood(floodOversize)
			}
			if ctx.Err() == nil {
				c.log.Warn("sfulink link lost", "node", c.url, "err", err)
			}
			// The client is down before anyone hears of it, so that a
			// rejoin in a Closed handler goes elsewhere.
			l.end(fmt.Errorf("sfulink: link to %s lost: %w (%v)", c.url, media.ErrUnavailable, err))
		} else if ctx.Err() == nil {
			c.log.Warn("sfulink cannot reach node", "node", c.url, "err", err, "retry_in", backoff)
		}
		if ctx.Err() != nil {
			return
		}
		// Jitter keeps many signal processes from reconnecting in step.
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.kick:
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, c.maxBackoff)
	}
}

// dial opens a link and makes it current; a failure is recorded for Join.
func (c *Client) dial(ctx context.Context) (*clientLink, error) {
	defer c.settledOnce.Do(func() { close(c.settled) })
	ws, resp, err := c.dialer.DialContext(ctx, c.url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		err = fmt.Errorf("dial %s: %w", c.url, err)
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		return nil, err
	}
	l := newClientLink(c, newEndpoint(ws, c.heartbeat, nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = ws.Close()
		return nil, errors.New("client closed")
	}
	c.link = l
	return l, nil
}

// current returns the link, waiting for the first connection attempt; a
// client that is down fails at once (and tries to connect again now).
func (c *Client) current(ctx context.Context) (*clientLink, error) {
	select {
	case <-c.settled:
	case <-ctx.Done():
		return nil, fmt.Errorf("sfulink: waiting for %s: %w", c.url, ctx.Err())
	}
	c.mu.Lock()
	l, lastErr, closed := c.link, c.lastErr, c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("sfulink: client of %s closed: %w", c.url, media.ErrUnavailable)
	case l == nil:
		select {
		case c.kick <- struct{}{}:
		default:
		}
		return nil, fmt.Errorf("sfulink: node %s unreachable: %w (%v)", c.url, media.ErrUnavailable, lastErr)
	}
	return l, nil
}

// waitSettled waits for the first connection attempt.
func (c *Client) waitSettled(ctx context.Context) {
	select {
	case <-c.settled:
	case <-ctx.Done():
	}
}

// Join implements media.Node.
func (c *Client) Join(ctx context.Context, roomID, memberID string, events media.Events) (media.Participant, error) {
	l, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	rp, err := l.newSession(events)
	if err != nil {
		return nil, err
	}
	err = l.open(ctx, message{Type: typeJoin, SID: rp.sid, Room: roomID, Member: memberID}, message{Type: typeClose, SID: rp.sid}, rp)
	if err != nil {
		return nil, fmt.Errorf("join room %s: %w", roomID, err)
	}
	return rp, nil
}
