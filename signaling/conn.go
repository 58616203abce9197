package signaling

import (
	"context"
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
	sendQueue  = 256 // messages buffered per tab before it counts as stuck
	closeGrace = time.Second

	hardReadLimit = 1 << 20
)

// wsConn is one tab's WebSocket. A single writer goroutine owns the socket's
// write side; Send only queues.
type wsConn struct {
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once
}

func (c *wsConn) Send(b []byte) bool {
	select {
	case <-c.done:
		return true // closing; the message has nowhere to go
	default:
	}
	select {
	case c.out <- b:
		return true
	default:
		return false
	}
}

func (c *wsConn) Close() { c.once.Do(func() { close(c.done) }) }

// Upgrader accepts WebSocket connections whose Origin is the public site.
func Upgrader(public *url.URL) *websocket.Upgrader {
	origin := public.Scheme + "://" + public.Host
	return &websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin: func(r *http.Request) bool {
			return r.Header.Get("Origin") == origin
		},
	}
}

// Serve runs one tab's connection: it joins the room, reads and dispatches
// messages until the tab goes away or ctx ends, and then records the
// disconnection so the member keeps its place for the grace period.
func (h *Hub) Serve(ctx context.Context, ws *websocket.Conn, consultID string, p Participant) {
	c := &wsConn{ws: ws, out: make(chan []byte, sendQueue), done: make(chan struct{})}
	r, m, err := h.Join(consultID, p, c)
	if err != nil {
		b := encode(closingMsg{Type: "ended"})
		_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
		_ = ws.WriteMessage(websocket.TextMessage, b)
		_ = ws.Close()
		return
	}
	log := h.deps.Log.With("consult", consultID, "member", p.ID)
	var wg sync.WaitGroup
	wg.Go(func() { c.writeLoop(ctx, log) })

	// Messages up to hardReadLimit are read and refused with a too-large
	// error, so the tab keeps its connection; beyond it the socket closes
	// with status 1009 rather than buffer an unbounded message.
	ws.SetReadLimit(hardReadLimit)
	_ = ws.SetReadDeadline(time.Now().Add(deadAfter))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(deadAfter)) })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseGoingAway, websocket.CloseNormalClosure) {
				log.Debug("connection closed", "err", err)
			}
			break
		}
		_ = ws.SetReadDeadline(time.Now().Add(deadAfter))
		if typ != websocket.TextMessage {
			r.Refuse(m, ErrMalformed)
			continue
		}
		r.Handle(m, data)
	}
	c.Close()
	wg.Wait()
	h.Disconnected(r, m, c)
}

// writeLoop sends queued messages and heartbeats until the connection closes.
func (c *wsConn) writeLoop(ctx context.Context, log *slog.Logger) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	defer c.ws.Close()
	for {
		select {
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				log.Debug("write failed", "err", err)
				c.Close()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.Close()
				return
			}
		case <-c.done:
			c.flush()
			return
		case <-ctx.Done():
			c.Close()
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(closeGrace))
			return
		}
	}
}

// flush writes what was queued before Close (a "removed" or "ended" notice)
// so the tab learns why it was disconnected.
func (c *wsConn) flush() {
	deadline := time.Now().Add(closeGrace)
	for {
		select {
		case b := <-c.out:
			_ = c.ws.SetWriteDeadline(deadline)
			if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		default:
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
			return
		}
	}
}
