package signaling

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Heartbeat timing: the server pings every pingEvery and drops a tab that
// has not answered for deadAfter, so a vanished peer is noticed within 30 s.
const (
	pingEvery  = 10 * time.Second
	deadAfter  = 30 * time.Second
	writeWait  = 10 * time.Second
	sendQueue  = 256 // messages queued per tab before it counts as stuck
	closeGrace = time.Second

	// hardReadLimit is well past MaxSDPMessageBytes: messages between the
	// two are read, refused and cost their rate budget.
	hardReadLimit = 2 * MaxSDPMessageBytes
	// readBufferSize is the read buffer a socket keeps for its whole life;
	// longer messages are read through it in pieces. Write buffers come
	// from a pool and are held only while a message is written.
	readBufferSize = 512
)

// Upgrader accepts WebSocket connections whose Origin is the public site.
func Upgrader(public *url.URL) *websocket.Upgrader {
	origin := public.Scheme + "://" + public.Host
	return &websocket.Upgrader{
		ReadBufferSize:  readBufferSize,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(r *http.Request) bool {
			return r.Header.Get("Origin") == origin
		},
	}
}

// Serve takes over one tab's upgraded connection: it joins the room and
// returns, so that the HTTP request and its buffers are released. The
// connection then runs on a goroutine of the hub's, which reads and
// dispatches messages until the tab goes away or the hub stops, and then
// records the disconnection so the member keeps its place for the grace
// period.
func (h *Hub) Serve(ws *websocket.Conn, consultID string, p Participant) {
	c := newWSConn(ws, h.deps.Log, h.deps.LargeMessages, consultID, p.ID)
	r, m, err := h.Join(consultID, p, c)
	if err != nil {
		b := refusal(err)
		_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
		_ = ws.WriteMessage(websocket.TextMessage, b)
		_ = ws.Close()
		return
	}
	if !h.socks.run(func(ctx context.Context) { h.serveConn(ctx, r, m, c, p.Session) }) {
		// The server is shutting down.
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
		c.writer.Wait()
		h.Disconnected(r, m, c)
	}
}

// serveConn reads one tab until it goes away, or tells it the server is
// going away when ctx ends.
func (h *Hub) serveConn(ctx context.Context, r *Room, m *Member, c *wsConn, s Session) {
	stop := context.AfterFunc(ctx, func() { c.closeWith(websocket.CloseGoingAway, "server shutting down") })
	unwatch := h.watchSession(r, m, c, s)
	c.startHeartbeat()
	c.read(ctx, r, m)
	unwatch()
	stop()
	c.Close()
	c.writer.Wait()
	h.Disconnected(r, m, c)
}

// read dispatches the tab's messages until the connection fails or closes.
// Messages up to hardReadLimit are read and refused with a too-large
// error, so the tab keeps its connection; beyond it the socket closes
// with status 1009 rather than buffer an unbounded message. A large one
// that the process's budget could not take is refused with busy.
func (c *wsConn) read(ctx context.Context, r *Room, m *Member) {
	c.readEach(ctx, func(in inbound) {
		switch {
		case in.typ != websocket.TextMessage:
			r.refuse(m, in.size, ErrMalformed)
		case in.busy:
			r.refuse(m, in.size, ErrBusy)
		default:
			r.Handle(m, in.data)
		}
	})
}

// inbound is one message of a tab. A binary message, and a large one
// that the budget could not take (busy), are dropped as they are read:
// only their size is kept.
type inbound struct {
	typ  int
	data []byte
	size int
	busy bool
}

// readEach passes each message of the tab to handle until the connection
// fails or closes; a large message's share of the budget is held until
// handle returns.
func (c *wsConn) readEach(ctx context.Context, handle func(inbound)) {
	ws := c.ws
	ws.SetReadLimit(hardReadLimit)
	_ = c.extendRead()
	ws.SetPongHandler(func(string) error { return c.extendRead() })
	for {
		in, held, err := c.next(ctx)
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseGoingAway, websocket.CloseNormalClosure) {
				c.log.Debug("connection closed", "consult", c.consult, "member", c.member, "err", err)
			}
			return
		}
		c.readBy = time.Time{}
		_ = c.extendRead()
		handle(in)
		if held {
			c.large.release()
		}
	}
}

// extendRead moves the read deadline deadAfter ahead, for a message or a
// heartbeat, but never past the end set for the message being read.
func (c *wsConn) extendRead() error {
	d := time.Now().Add(deadAfter)
	if !c.readBy.IsZero() && c.readBy.Before(d) {
		d = c.readBy
	}
	return c.ws.SetReadDeadline(d)
}

// readWithin gives the message being read d to arrive, whatever
// heartbeats come meanwhile.
func (c *wsConn) readWithin(d time.Duration) {
	c.readBy = time.Now().Add(d)
	_ = c.ws.SetReadDeadline(c.readBy)
}

// next reads the next message. It keeps up to MaxMessageBytes of it
// without asking the budget; past that the message waits for its share of
// the budget (then held reports true and the caller releases it once the
// message is handled) and is read into a buffer of largeMessageWeight
// bytes, the rest of a longer one being dropped. A message must arrive
// whole within deadAfter of its first frame, and a large one within
// largeReadWait of taking the budget. A binary message is never kept.
func (c *wsConn) next(ctx context.Context) (in inbound, held bool, err error) {
	typ, rd, err := c.ws.NextReader()
	if err != nil {
		return inbound{}, false, err
	}
	c.readWithin(deadAfter)
	if typ != websocket.TextMessage {
		n, err := io.Copy(io.Discard, rd)
		return inbound{typ: typ, size: int(n)}, false, err
	}
	data, err := io.ReadAll(io.LimitReader(rd, MaxMessageBytes+1))
	if err != nil || len(data) <= MaxMessageBytes {
		return inbound{typ: typ, data: data, size: len(data)}, false, err
	}
	return c.readLarge(ctx, typ, rd, data)
}

// readLarge reads the rest of a message of which head, MaxMessageBytes+1
// bytes, was read: into a share of the budget, or to nowhere when the
// budget stays spent (the message is then busy).
func (c *wsConn) readLarge(ctx context.Context, typ int, rd io.Reader, head []byte) (in inbound, held bool, err error) {
	if err := c.large.acquire(ctx); err != nil {
		if !errors.Is(err, errBudgetSpent) {
			return inbound{}, false, err
		}
		c.log.Debug("large message refused: budget spent", "consult", c.consult, "member", c.member)
		c.readWithin(c.large.readWait)
		n, err := io.Copy(io.Discard, rd)
		return inbound{typ: typ, size: len(head) + int(n), busy: true}, false, err
	}
	c.readWithin(c.large.readWait)
	buf := make([]byte, largeMessageWeight)
	n := copy(buf, head)
	m, err := io.ReadFull(rd, buf[n:])
	switch {
	case err == nil:
		// Longer than any message taken: the rest is dropped, and the
		// dispatcher refuses it as too large.
		_, err = io.Copy(io.Discard, rd)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = nil
	}
	if err != nil {
		c.large.release()
		return inbound{}, false, err
	}
	return inbound{typ: typ, data: buf[:n+m], size: n + m}, true, nil
}

// wsConn is one tab's WebSocket as the room sees it. Send only queues. A
// writer goroutine runs while there is something to write (messages, a
// heartbeat, the closing handshake) and ends when the queue is empty, so
// an idle tab costs its reader goroutine and a timer, and holds no queue
// or write buffer.
type wsConn struct {
	ws      *websocket.Conn
	log     *slog.Logger
	consult string
	member  string
	large   *LargeMessages
	// readBy is when the message being read must have arrived; zero
	// between messages. Only the reader uses it.
	readBy time.Time

	mu      sync.Mutex
	queue   [][]byte    // messages for the writer; nil when there are none
	ping    bool        // a heartbeat is due
	code    int         // the close status once closing; 0 while open
	reason  string      // the close reason sent with code
	writing bool        // a writer goroutine runs, or the socket is closed
	beat    *time.Timer // the next heartbeat, once started
	writer  sync.WaitGroup
}

func newWSConn(ws *websocket.Conn, log *slog.Logger, large *LargeMessages, consultID, memberID string) *wsConn {
	return &wsConn{ws: ws, log: log, large: large, consult: consultID, member: memberID}
}

// Send queues b and never blocks; it reports false when the tab has more
// than sendQueue messages waiting, and the room then drops it.
func (c *wsConn) Send(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code != 0 {
		return true // closing; the message has nowhere to go
	}
	if len(c.queue) >= sendQueue {
		return false
	}
	c.queue = append(c.queue, b)
	c.wakeLocked()
	return true
}

// Close sends what was queued (a "removed" or "ended" notice, so the tab
// learns why it was disconnected) and closes the socket.
func (c *wsConn) Close() { c.closeWith(websocket.CloseNormalClosure, "") }

func (c *wsConn) closeWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code != 0 {
		return
	}
	c.code, c.reason = code, reason
	if c.beat != nil {
		c.beat.Stop()
	}
	// The writer sends the rest of the queue and the close message, but a
	// write stuck on a tab that stopped reading ends with the socket
	// within closeGrace rather than writeWait.
	time.AfterFunc(closeGrace, func() { _ = c.ws.Close() })
	c.wakeLocked()
}

func (c *wsConn) startHeartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code == 0 {
		c.beat = time.AfterFunc(pingEvery, c.heartbeat)
	}
}

func (c *wsConn) heartbeat() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code != 0 {
		return
	}
	c.ping = true
	c.wakeLocked()
	c.beat.Reset(pingEvery)
}

// wakeLocked starts the writer unless it runs.
func (c *wsConn) wakeLocked() {
	if !c.writing {
		c.writing = true
		c.writer.Go(c.write)
	}
}

// write sends what is queued until nothing is, then ends; once the
// connection is closing it sends the rest of the queue and the close
// message within closeGrace and closes the socket, after which no writer
// starts again.
func (c *wsConn) write() {
	for {
		c.mu.Lock()
		batch, ping, code, reason := c.queue, c.ping, c.code, c.reason
		c.queue, c.ping = nil, false
		if len(batch) == 0 && !ping && code == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		deadline := time.Now().Add(writeWait)
		if code != 0 {
			deadline = time.Now().Add(closeGrace)
		}
		if err := c.send(batch, ping, deadline); err != nil {
			c.log.Debug("write failed", "consult", c.consult, "member", c.member, "err", err)
			c.fail()
			return
		}
		if code != 0 {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
			_ = c.ws.Close()
			return
		}
	}
}

func (c *wsConn) send(batch [][]byte, ping bool, deadline time.Time) error {
	if ping {
		if err := c.ws.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
			return err
		}
	}
	_ = c.ws.SetWriteDeadline(deadline)
	for _, b := range batch {
		if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return err
		}
	}
	return nil
}

// fail closes a socket that could not be written; its reader then fails
// too and the member is disconnected.
func (c *wsConn) fail() {
	c.mu.Lock()
	if c.code == 0 {
		c.code = websocket.CloseAbnormalClosure
		if c.beat != nil {
			c.beat.Stop()
		}
	}
	c.queue = nil
	c.mu.Unlock()
	_ = c.ws.Close()
}

// sockets owns the goroutines of a hub's WebSockets: each serves one tab
// until the tab goes away or close is called, which tells every tab that
// the server is going away and waits for them.
type sockets struct {
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newSockets() *sockets {
	ctx, stop := context.WithCancel(context.Background())
	return &sockets{ctx: ctx, stop: stop}
}

// run starts serve on a goroutine of its own, unless close was called.
func (s *sockets) run(serve func(context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.wg.Go(func() { serve(s.ctx) })
	return true
}

// close ends every socket and waits for their goroutines.
func (s *sockets) close() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
}
