package sfulink

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/media"
)

// maxID bounds session, room and member ids on the wire.
const maxID = 256

// sessionQueue is how many operations of one session may wait; a signal
// process that sends more before the first ones finish is misbehaving.
const sessionQueue = 64

// serverConn is one signal process's link on the node side.
type serverConn struct {
	srv    *Server
	ep     *endpoint
	peer   string
	ctx    context.Context // ends with the link; bounds Join calls
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*serverSession   // nil once the link ends
	recs     map[uint32]*serverRecording // nil once the link ends
	workers  sync.WaitGroup

	// Used by the writer goroutine only.
	lastLoad media.Load
	loadSent time.Time
}

func newServerConn(s *Server, ws *websocket.Conn, peer string) *serverConn {
	c := &serverConn{srv: s, peer: peer, sessions: map[string]*serverSession{}, recs: map[uint32]*serverRecording{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.ep = newEndpoint(ws, s.heartbeat, c.tick)
	return c
}

// serve runs the link until it ends, then closes its sessions on the node:
// the signal process that drove them is gone, and will tell its browsers
// to join again.
func (c *serverConn) serve() error {
	c.tick()
	err := c.ep.run(c.handle, c.handleMedia)
	c.cancel()
	c.endAll(nil)
	c.workers.Wait()
	return err
}

// endAll ends every session of the link, sending msg (with each session's
// id) when it is not nil.
func (c *serverConn) endAll(msg *message) {
	var end *message
	if msg != nil {
		end = &message{Type: typeRecordEnd, Code: msg.Code, Error: msg.Error}
	}
	c.endRecordings(end)
	c.mu.Lock()
	all := make([]*serverSession, 0, len(c.sessions))
	for _, ss := range c.sessions {
		all = append(all, ss)
	}
	if msg == nil {
		c.sessions = nil // the link is gone: no new sessions
	}
	c.mu.Unlock()
	for _, ss := range all {
		if msg == nil {
			ss.end(nil)
			continue
		}
		m := *msg
		m.SID = ss.sid
		ss.end(&m)
	}
}

// tick reports the node's load when it changed, and every second anyway.
func (c *serverConn) tick() {
	l := c.srv.node.Load()
	if l == c.lastLoad && time.Since(c.loadSent) < time.Second {
		return
	}
	c.lastLoad, c.loadSent = l, time.Now()
	c.send(message{Type: typeLoad, Load: &l})
}

// send queues m; a link that cannot take it is too slow to serve and is
// closed, which ends its sessions, rather than left to stall the node.
func (c *serverConn) send(m message) {
	if !c.ep.send(m) {
		select {
		case <-c.ep.done:
		default:
			c.srv.log.Warn("sfulink link cannot keep up; closing it", "peer", c.peer)
			c.ep.stop()
		}
	}
}

func (c *serverConn) result(id uint64, err error, load *media.Load) {
	m := message{Type: typeResult, ID: id, Load: load}
	if err != nil {
		m.Code, m.Error = codeOf(err), err.Error()
	}
	c.send(m)
}

// fail answers a message the node cannot serve: a result when it carries a
// request id, an error message otherwise.
func (c *serverConn) fail(m message, code, text string) {
	if m.ID != 0 {
		c.send(message{Type: typeResult, ID: m.ID, Code: code, Error: text})
		return
	}
	c.send(message{Type: typeError, SID: m.SID, Code: code, Error: text})
}

// handle dispatches one message from the read loop; nothing here blocks on
// the node.
func (c *serverConn) handle(data []byte) {
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		c.srv.log.Warn("sfulink malformed message", "peer", c.peer, "err", err)
		c.fail(message{}, codeBadRequest, "malformed message: "+err.Error())
		return
	}
	switch m.Type {
	case typeJoin:
		c.join(m)
	case typeOffer, typeAnswer, typeCandidate, typeView:
		c.op(m)
	case typeRecord:
		c.record(m)
	case typeKeyframe, typeStopRecord:
		c.recordOp(m)
	case typeClose:
		c.mu.Lock()
		ss := c.sessions[m.SID]
		c.mu.Unlock()
		if ss != nil {
			ss.end(nil)
		}
	default:
		c.fail(m, codeBadRequest, fmt.Sprintf("unknown message type %q", m.Type))
	}
}

// handleMedia refuses a binary message: media goes from node to signal
// only.
func (c *serverConn) handleMedia([]byte) {
	c.fail(message{}, codeBadRequest, "unexpected binary message")
}

func (c *serverConn) join(m message) {
	switch {
	case m.ID == 0:
		c.fail(m, codeBadRequest, "join without a request id")
		return
	case m.SID == "" || m.Room == "" || m.Member == "" || len(m.SID) > maxID || len(m.Room) > maxID || len(m.Member) > maxID:
		c.fail(m, codeBadRequest, "join needs sid, room and member of at most 256 bytes")
		return
	case c.srv.isClosing():
		c.fail(m, codeShutdown, "media node shutting down")
		return
	}
	c.mu.Lock()
	if c.sessions == nil {
		c.mu.Unlock()
		return
	}
	if _, dup := c.sessions[m.SID]; dup {
		c.mu.Unlock()
		c.fail(m, codeBadRequest, "session id already in use")
		return
	}
	ss := &serverSession{conn: c, sid: m.SID, room: m.Room, member: m.Member,
		ops: make(chan message, sessionQueue), gone: make(chan struct{})}
	c.sessions[m.SID] = ss
	c.workers.Add(1)
	c.mu.Unlock()
	ss.ops <- m // the queue is new and empty
	go ss.run()
}

func (c *serverConn) op(m message) {
	if m.ID == 0 {
		c.fail(m, codeBadRequest, m.Type+" without a request id")
		return
	}
	c.mu.Lock()
	ss := c.sessions[m.SID]
	c.mu.Unlock()
	if ss == nil {
		c.fail(m, codeUnknownSession, "no such session")
		return
	}
	// Queued under ss.mu, which end takes too: every request queued
	// before the session ends is answered by the worker's last drain.
	ss.mu.Lock()
	over, queued := ss.over, false
	if !over {
		select {
		case ss.ops <- m:
			queued = true
		default:
		}
	}
	ss.mu.Unlock()
	switch {
	case over:
		c.fail(m, codeUnknownSession, "session ended")
	case !queued:
		c.fail(m, codeBusy, "too many operations waiting on this session")
	}
}

// serverSession is one participant session of a link. Its worker applies
// the session's operations in order, one at a time.
type serverSession struct {
	conn              *serverConn
	sid, room, member string
	ops               chan message
	gone              chan struct{} // closed when the session ends

	mu          sync.Mutex
	participant media.Participant // set once joined; used by the worker only
	joined      bool              // the node has the session, so its end is news to signal
	over        bool
}

func (ss *serverSession) run() {
	c := ss.conn
	defer c.workers.Done()
	for {
		select {
		case <-ss.gone:
			// Requests still queued get their one result.
		queued:
			for {
				select {
				case m := <-ss.ops:
					c.result(m.ID, &Error{Code: codeUnknownSession, Msg: "session ended"}, nil)
				default:
					break queued
				}
			}
			if ss.participant != nil {
				ss.participant.Close()
			}
			return
		case m := <-ss.ops:
			ss.apply(m)
		}
	}
}

func (ss *serverSession) apply(m message) {
	c := ss.conn
	if m.Type == typeJoin {
		ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
		p, err := c.srv.node.Join(ctx, ss.room, ss.member, sessionEvents{ss})
		cancel()
		if err != nil {
			c.result(m.ID, err, nil)
			ss.end(nil)
			return
		}
		// Claimed before the result goes out, so that the member index
		// follows the order in which signal saw the joins succeed.
		c.srv.claim(ss)
		l := c.srv.node.Load()
		// The result goes out under ss.mu, as end's message does, so that
		// signal hears of the join before it hears of its end.
		ss.mu.Lock()
		if ss.over {
			// The link or the node's shutdown ended the session while it
			// joined: the result says so, and no closed message follows.
			ss.mu.Unlock()
			c.srv.release(ss)
			p.Close()
			c.result(m.ID, &Error{Code: codeUnavailable, Msg: "session ended while joining"}, nil)
			return
		}
		ss.joined, ss.participant = true, p
		c.result(m.ID, nil, &l)
		ss.mu.Unlock()
		return
	}
	if ss.participant == nil {
		c.result(m.ID, &Error{Code: codeUnknownSession, Msg: "session not joined"}, nil)
		return
	}
	var err error
	switch m.Type {
	case typeOffer:
		err = ss.participant.Offer(m.SDP)
	case typeAnswer:
		err = ss.participant.Answer(m.SDP)
	case typeCandidate:
		if m.Candidate == nil {
			err = &Error{Code: codeBadRequest, Msg: "candidate missing"}
			break
		}
		err = ss.participant.Candidate(*m.Candidate)
	case typeView:
		err = ss.participant.View(m.Publisher, m.Width, m.Height)
	}
	c.result(m.ID, err, nil)
}

// end ends the session once: it leaves the link and the member index,
// sends msg if not nil and the session had joined (a join under way gets
// its answer from its result), and lets the worker close the node's
// session.
func (ss *serverSession) end(msg *message) {
	c := ss.conn
	ss.mu.Lock()
	if ss.over {
		ss.mu.Unlock()
		return
	}
	ss.over = true
	if msg != nil && ss.joined {
		c.send(*msg)
	}
	ss.mu.Unlock()
	c.mu.Lock()
	if c.sessions[ss.sid] == ss {
		delete(c.sessions, ss.sid)
	}
	c.mu.Unlock()
	c.srv.release(ss)
	close(ss.gone)
}

func (ss *serverSession) ended() bool {
	select {
	case <-ss.gone:
		return true
	default:
		return false
	}
}

// sessionEvents carries the node's events of one session onto the link.
// They only queue messages, so they never block the node.
type sessionEvents struct{ ss *serverSession }

func (e sessionEvents) emit(m message) {
	if e.ss.ended() {
		return
	}
	m.SID = e.ss.sid
	e.ss.conn.send(m)
}

func (e sessionEvents) Answer(sdp string)  { e.emit(message{Type: typeAnswer, SDP: sdp}) }
func (e sessionEvents) Offer(sdp string)   { e.emit(message{Type: typeOffer, SDP: sdp}) }
func (e sessionEvents) Speaker(who string) { e.emit(message{Type: typeSpeaker, Member: who}) }
func (e sessionEvents) Closed(reason error) {
	e.ss.conn.srv.log.Info("sfulink session closed by the node", "room", e.ss.room, "member", e.ss.member, "err", reason)
	e.ss.end(&message{Type: typeClosed, SID: e.ss.sid, Code: codeOf(reason), Error: reason.Error()})
}
