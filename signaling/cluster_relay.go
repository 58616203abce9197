package signaling

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wire is the header of a message between replicas; a tab's frame, when
// the message carries one, follows it after a newline, as the tab sent it
// or as the room sends it.
type wire struct {
	Kind    string `json:"k"`
	From    string `json:"f"`
	Conn    string `json:"c,omitempty"`
	Consult string `json:"r,omitempty"`
	Call    string `json:"q,omitempty"`
	Code    int    `json:"n,omitempty"`
	Text    string `json:"t,omitempty"`
}

func decodeWire(b []byte) (wire, []byte, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return wire{}, nil, errors.New("no header")
	}
	var w wire
	if err := json.Unmarshal(b[:i], &w); err != nil {
		return wire{}, nil, err
	}
	return w, b[i+1:], nil
}

// send queues a message for replica to ("" for every replica); it never
// blocks, and reports false when the queue is full.
func (c *Cluster) send(to string, w wire, body []byte) bool {
	w.From = c.cfg.Replica
	hdr, _ := json.Marshal(w)
	data := make([]byte, 0, len(hdr)+1+len(body))
	data = append(append(append(data, hdr...), '\n'), body...)
	return c.out.push(busMessage{to: to, data: data})
}

// busHandlers maps each kind of message a replica receives to its handler.
var busHandlers = map[string]func(*Cluster, wire, []byte){
	// To the owner of a consult, from the replica that holds a tab.
	"join":    (*Cluster).onJoin,
	"frame":   (*Cluster).onFrame,
	"binary":  (*Cluster).onFrame,
	"gone":    (*Cluster).onGone,
	"expired": (*Cluster).onExpired,
	// To the owner, from a replica that received an HTTP action.
	"end":       (*Cluster).onEnd,
	"closelink": (*Cluster).onCloseLink,
	"announce":  (*Cluster).onAnnounce,
	// To every replica.
	"account": (*Cluster).onAccount,
	// To the replica that holds a tab or made a call.
	"out":   (*Cluster).onOut,
	"close": (*Cluster).onClose,
	"reply": (*Cluster).onReply,
}

// receive runs the replica's subscription until ctx ends.
func (c *Cluster) receive(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.cfg.Bus.Receive(ctx, c.cfg.Replica, c.deliver, c.resubscribed)
		if err != nil && ctx.Err() == nil {
			c.log.Error("bus subscription", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Cluster) deliver(from string, b []byte) {
	w, body, err := decodeWire(b)
	if err != nil {
		c.log.Warn("unreadable bus message", "from", from, "err", err)
		return
	}
	if w.From != from {
		c.log.Warn("bus message refused: its header names another sender", "from", from)
		return
	}
	if w.From == c.cfg.Replica {
		return // our own message to every replica
	}
	h, ok := busHandlers[w.Kind]
	if !ok {
		c.log.Warn("unknown bus message", "kind", w.Kind)
		return
	}
	h(c, w, body)
}

// resubscribed follows a break in the subscription, in which frames may
// have been lost: every relayed tab, both ways, starts again.
func (c *Cluster) resubscribed() {
	c.log.Warn("bus subscription restored; relayed tabs reconnect")
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range c.remotes {
		rc.do(func() { c.dropRemote(rc, true) })
	}
	for _, px := range c.proxies {
		px.conn.closeWith(websocket.CloseServiceRestart, "consult moved")
	}
}

// remoteInbox bounds the frames of one relayed tab waiting for its room.
const remoteInbox = 512

// remoteConn is, on the owner, a member's tab held by another replica.
// Send publishes and never blocks. The tab's frames are handled in order
// on a goroutine that runs while some wait, as a local tab's reader would.
type remoteConn struct {
	c       *Cluster
	key     string // "replica/conn"
	replica string
	id      string
	closed  atomic.Bool

	mu      sync.Mutex
	inbox   []func()
	running bool
	r       *Room   // set once joined; owned by the inbox
	m       *Member // idem
}

// Send implements Conn.
func (rc *remoteConn) Send(b []byte) bool {
	if rc.closed.Load() {
		return true
	}
	return rc.c.send(rc.replica, wire{Kind: "out", Conn: rc.id}, b)
}

// Close implements Conn.
func (rc *remoteConn) Close() { rc.closeWith(websocket.CloseNormalClosure, "") }

func (rc *remoteConn) closeWith(code int, reason string) {
	if rc.closed.Swap(true) {
		return
	}
	rc.c.send(rc.replica, wire{Kind: "close", Conn: rc.id, Code: code, Text: reason}, nil)
}

// do runs f after the tab's earlier frames.
func (rc *remoteConn) do(f func()) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.inbox) >= remoteInbox {
		// A tab that floods its room is dropped, as a local one is.
		rc.closeWith(websocket.ClosePolicyViolation, "too many messages")
		return
	}
	rc.inbox = append(rc.inbox, f)
	if !rc.running {
		rc.running = true
		rc.c.work.Go(rc.drain)
	}
}

func (rc *remoteConn) drain() {
	for {
		rc.mu.Lock()
		if len(rc.inbox) == 0 {
			rc.running = false
			rc.mu.Unlock()
			return
		}
		f := rc.inbox[0]
		rc.inbox = rc.inbox[1:]
		rc.mu.Unlock()
		f()
	}
}

func (c *Cluster) remote(w wire) *remoteConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remotes[w.From+"/"+w.Conn]
}

// dropRemote forgets a relayed tab; disconnect records that it went, so
// the member keeps its place for the grace period. It runs on the inbox.
func (c *Cluster) dropRemote(rc *remoteConn, disconnect bool) {
	if disconnect && rc.r != nil {
		closeMoved(rc)
		c.hub.Disconnected(rc.r, rc.m, rc)
	}
	rc.closed.Store(true)
	c.mu.Lock()
	if c.remotes[rc.key] == rc {
		delete(c.remotes, rc.key)
	}
	c.mu.Unlock()
}

func (c *Cluster) onJoin(w wire, body []byte) {
	var p participantWire
	if err := json.Unmarshal(body, &p); err != nil || p.ID == "" {
		c.log.Warn("unreadable relayed join", "from", w.From)
		return
	}
	rc := &remoteConn{c: c, key: w.From + "/" + w.Conn, replica: w.From, id: w.Conn}
	c.mu.Lock()
	c.remotes[rc.key] = rc
	c.mu.Unlock()
	rc.do(func() {
		var r *Room
		var m *Member
		var err error
		owner, cerr := c.claimOwned(w.Consult, func() { r, m, err = c.hub.Join(w.Consult, p.participant(), rc) })
		switch {
		case cerr != nil || !owner:
			c.log.Info("relayed tab sent back: this replica does not own the consult", "consult", w.Consult, "member", p.ID, "from", w.From)
			rc.closeWith(websocket.CloseServiceRestart, "consult moved")
			c.dropRemote(rc, false)
		case err != nil:
			rc.Send(refusal(err))
			rc.Close()
			c.dropRemote(rc, false)
		default:
			rc.r, rc.m = r, m
		}
	})
}

// claimOwned runs local under the consult's lease if this replica holds
// it; it never acquires one, for a relayed tab came to an owner that may
// have given the consult up.
func (c *Cluster) claimOwned(consultID string, local func()) (bool, error) {
	c.mu.Lock()
	l := c.leases[consultID]
	c.mu.Unlock()
	if l == nil {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := c.owns(consultID); err != nil {
		return false, nil
	}
	local()
	return true, nil
}

func (c *Cluster) onFrame(w wire, body []byte) {
	rc := c.remote(w)
	if rc == nil {
		return
	}
	binary := w.Kind == "binary"
	rc.do(func() {
		switch {
		case rc.r == nil:
		case binary:
			rc.r.refuse(rc.m, 0, ErrMalformed)
		default:
			rc.r.Handle(rc.m, body)
		}
	})
}

func (c *Cluster) onGone(w wire, _ []byte) {
	if rc := c.remote(w); rc != nil {
		rc.closed.Store(true)
		rc.do(func() {
			if rc.r != nil {
				c.hub.Disconnected(rc.r, rc.m, rc)
			}
			c.dropRemote(rc, false)
		})
	}
}

func (c *Cluster) onExpired(w wire, _ []byte) {
	if rc := c.remote(w); rc != nil {
		rc.do(func() {
			if rc.r != nil {
				c.hub.sessionEnded(rc.r, rc.m, rc)
			}
		})
	}
}

func (c *Cluster) onEnd(w wire, _ []byte) {
	c.work.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		answer := ""
		if _, err := c.owns(w.Consult); err != nil {
			answer = "not the owner"
		} else if err := c.hub.EndConsult(ctx, w.Consult, w.Text); err != nil {
			c.log.Error("end consult for another replica", "consult", w.Consult, "err", err)
			answer = "could not end the consult"
		}
		c.send(w.From, wire{Kind: "reply", Call: w.Call, Text: answer}, nil)
	})
}

func (c *Cluster) onCloseLink(w wire, _ []byte) {
	if _, err := c.owns(w.Consult); err == nil {
		c.hub.CloseLink(w.Consult, w.Text)
	}
}

func (c *Cluster) onAnnounce(w wire, body []byte) {
	var msg ChatMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return
	}
	if _, err := c.owns(w.Consult); err == nil {
		c.hub.Announce(w.Consult, msg)
	}
}

func (c *Cluster) onAccount(w wire, _ []byte) {
	c.work.Go(func() { c.hub.CloseAccount(w.Text) })
}

func (c *Cluster) onReply(w wire, _ []byte) {
	c.mu.Lock()
	answer := c.calls[w.Call]
	c.mu.Unlock()
	if answer != nil {
		select {
		case answer <- w.Text:
		default:
		}
	}
}

// joinTimeout is how long a relayed tab waits for the owner's welcome.
const joinTimeout = 10 * time.Second

// proxy is a tab this replica holds for a consult another replica owns.
type proxy struct {
	id     string
	owner  string
	conn   *wsConn
	joined atomic.Bool
}

func (c *Cluster) lookupProxy(id string) *proxy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proxies[id]
}

func (c *Cluster) onOut(w wire, body []byte) {
	px := c.lookupProxy(w.Conn)
	if px == nil || px.owner != w.From {
		return
	}
	px.joined.Store(true)
	if !px.conn.Send(body) {
		px.conn.Close()
	}
}

func (c *Cluster) onClose(w wire, _ []byte) {
	px := c.lookupProxy(w.Conn)
	if px == nil || px.owner != w.From {
		return
	}
	if w.Code == 0 {
		w.Code = websocket.CloseNormalClosure
	}
	px.conn.closeWith(w.Code, w.Text)
}

// proxy relays a tab to the consult's owner until the tab goes away, the
// owner closes it, or the owner dies; it runs on the tab's goroutine.
func (c *Cluster) proxy(ctx context.Context, ws *websocket.Conn, consultID string, p Participant, owner string) {
	px := &proxy{id: newConnID(), owner: owner, conn: newWSConn(ws, c.log, c.hub.deps.LargeMessages, consultID, p.ID)}
	c.mu.Lock()
	c.proxies[px.id] = px
	c.mu.Unlock()
	to := func(kind string, body []byte) bool {
		return c.send(owner, wire{Kind: kind, Consult: consultID, Conn: px.id}, body)
	}
	to("join", toWire(p))
	c.log.Info("tab relayed to the consult's owner", "consult", consultID, "member", p.ID, "owner", owner)
	late := time.AfterFunc(joinTimeout, func() {
		if !px.joined.Load() {
			px.conn.closeWith(websocket.CloseTryAgainLater, "consult unavailable")
		}
	})
	stop := context.AfterFunc(ctx, func() { px.conn.closeWith(websocket.CloseGoingAway, "server shutting down") })
	unwatch := c.hub.watchSessionFunc(consultID, p.ID, p.Session, func() {
		// The owner tells the tab and closes it; should it not answer,
		// the tab closes here.
		to("expired", nil)
		time.AfterFunc(joinTimeout, px.conn.Close)
	})
	px.conn.startHeartbeat()
	px.conn.readEach(ctx, func(in inbound) {
		if in.busy {
			// Refused here: the owner never sees the message.
			px.conn.Send(encode(errorMsg{Type: "error", ProtoError: *ErrBusy}))
			return
		}
		kind, data := "frame", in.data
		if in.typ != websocket.TextMessage {
			kind, data = "binary", nil
		}
		if !to(kind, data) {
			px.conn.Close()
		}
	})
	unwatch()
	stop()
	late.Stop()
	px.conn.Close()
	px.conn.writer.Wait()
	to("gone", nil)
	c.mu.Lock()
	delete(c.proxies, px.id)
	c.mu.Unlock()
}

// checkPeers notices replicas that stopped sending heartbeats: tabs
// relayed to a dead owner reconnect, and members whose tabs a dead replica
// held are disconnected (they keep their place for the grace period).
func (c *Cluster) checkPeers(ctx context.Context) {
	c.mu.Lock()
	peers := map[string]bool{}
	for _, px := range c.proxies {
		peers[px.owner] = true
	}
	for _, rc := range c.remotes {
		peers[rc.replica] = true
	}
	c.mu.Unlock()
	if len(peers) == 0 {
		return
	}
	names := make([]string, 0, len(peers))
	for p := range peers {
		names = append(names, p)
	}
	alive, err := c.cfg.Bus.Alive(ctx, names)
	if err != nil {
		c.log.Warn("check replicas", "err", err)
		return
	}
	for name, ok := range alive {
		if !ok {
			c.log.Warn("replica stopped answering; the tabs it relayed or held reconnect", "replica", name)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, px := range c.proxies {
		if !alive[px.owner] {
			px.conn.closeWith(websocket.CloseServiceRestart, "consult moved")
		}
	}
	for _, rc := range c.remotes {
		if !alive[rc.replica] {
			rc.do(func() { c.dropRemote(rc, true) })
		}
	}
}

func newConnID() string { return rand.Text() }

// outboxLimit bounds the messages waiting for the bus; beyond it sends
// report false and the room drops the tab, as a full socket queue does.
const outboxLimit = 1 << 16

// outbox sends the replica's messages in order on one goroutine, in
// batches, so that no room waits on the bus.
type outbox struct {
	bus  Bus
	log  *slog.Logger
	wake chan struct{}

	mu    sync.Mutex
	queue []busMessage
}

// busMessage is one message between replicas; to "" is every replica.
type busMessage struct {
	to   string
	data []byte
}

func newOutbox(bus Bus, log *slog.Logger) *outbox {
	return &outbox{bus: bus, log: log, wake: make(chan struct{}, 1)}
}

func (o *outbox) push(m busMessage) bool {
	o.mu.Lock()
	if len(o.queue) >= outboxLimit {
		o.mu.Unlock()
		return false
	}
	o.queue = append(o.queue, m)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// run sends until ctx ends, then sends what is left.
func (o *outbox) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			o.flush(context.Background())
			return
		case <-o.wake:
			o.flush(ctx)
		}
	}
}

func (o *outbox) flush(ctx context.Context) {
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue = nil
		o.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		to, data := make([]string, len(batch)), make([][]byte, len(batch))
		for i, m := range batch {
			to[i], data[i] = m.to, m.data
		}
		err := o.bus.Publish(pctx, to, data)
		cancel()
		if err != nil {
			o.log.Error("bus publish; relayed messages lost", "messages", len(batch), "err", err)
		}
	}
}
