package sfulink

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// endpoint is one end of a link WebSocket, the same on both sides: the
// caller's goroutine reads (run), a goroutine the endpoint owns writes
// queued messages and pings, and both give up on a peer that stays silent
// for three heartbeats.
type endpoint struct {
	ws        *websocket.Conn
	heartbeat time.Duration
	tick      func() // called by the writer every tickEvery, if set

	out        chan outMsg
	frame      []byte        // writer-owned: the media message being batched
	done       chan struct{} // closed by stop: tear everything down
	flush      chan struct{} // closed by drain: write what is queued, then a close frame
	readerDone chan struct{}
	writerDone chan struct{}
	stopOnce   sync.Once
	flushOnce  sync.Once
}

// outMsg is a queued message: JSON text, or one record of a binary media
// message (see frame.go).
type outMsg struct {
	b     []byte
	media bool
}

// mediaQueue is how many media records may wait for the writer. Control
// messages have sendQueue more places besides, so that recorded media
// that the link cannot carry is dropped (the recorder sees the gap) and
// never crowds out a session's messages.
const mediaQueue = 2048

// tickEvery paces the node's load reports: at most this late after a change.
const tickEvery = 250 * time.Millisecond

func newEndpoint(ws *websocket.Conn, heartbeat time.Duration, tick func()) *endpoint {
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	ws.SetReadLimit(MaxMessage)
	return &endpoint{
		ws: ws, heartbeat: heartbeat, tick: tick,
		out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{}), flush: make(chan struct{}),
		readerDone: make(chan struct{}), writerDone: make(chan struct{}),
	}
}

func (e *endpoint) deadline() time.Time { return time.Now().Add(3 * e.heartbeat) }

// send queues m without blocking. It returns false when the link is
// stopped or its queue is full; the caller decides whether that ends the
// link.
func (e *endpoint) send(m message) bool {
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	select {
	case <-e.done:
		return false
	default:
	}
	select {
	case e.out <- outMsg{b: b}:
		return true
	default:
		return false
	}
}

// sendMedia queues one record of a media message without blocking; it
// returns false, and the record is dropped, when mediaQueue messages
// wait already or the link is stopped.
func (e *endpoint) sendMedia(rec []byte) bool {
	if len(e.out) >= mediaQueue {
		return false
	}
	select {
	case <-e.done:
		return false
	case e.out <- outMsg{b: rec, media: true}:
		return true
	default:
		return false
	}
}

// run starts the writer, then reads messages and hands each to handle
// (text) or media (binary) until the link fails or is stopped. It
// returns the read error after the writer has ended.
func (e *endpoint) run(handle, media func([]byte)) error {
	go e.write()
	defer close(e.readerDone)
	_ = e.ws.SetReadDeadline(e.deadline())
	e.ws.SetPongHandler(func(string) error { return e.ws.SetReadDeadline(e.deadline()) })
	var err error
	for {
		var data []byte
		var kind int
		kind, data, err = e.ws.ReadMessage()
		if err != nil {
			break
		}
		_ = e.ws.SetReadDeadline(e.deadline())
		if kind == websocket.BinaryMessage {
			media(data)
		} else {
			handle(data)
		}
	}
	e.stop()
	<-e.writerDone
	return err
}

func (e *endpoint) write() {
	defer close(e.writerDone)
	ping := time.NewTicker(e.heartbeat)
	defer ping.Stop()
	var tick <-chan time.Time
	if e.tick != nil {
		t := time.NewTicker(tickEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case m := <-e.out:
			if !e.writeOut(m) {
				return
			}
		case <-ping.C:
			if err := e.ws.WriteControl(websocket.PingMessage, nil, e.deadline()); err != nil {
				e.stop()
				return
			}
		case <-tick:
			e.tick()
		case <-e.flush:
		queued:
			for {
				select {
				case m := <-e.out:
					if !e.writeOut(m) {
						return
					}
				default:
					break queued
				}
			}
			_ = e.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"), e.deadline())
			return
		case <-e.done:
			return
		}
	}
}

// writeOut writes m; a media record takes the records queued behind it
// into the same message, up to maxFrame, and writes the control message
// that ends the run after it.
func (e *endpoint) writeOut(m outMsg) bool {
	for m.media {
		e.frame = append(e.frame[:0], mediaVersion)
		e.frame = append(e.frame, m.b...)
		m = outMsg{}
	batch:
		for len(e.frame) < maxFrame {
			select {
			case next := <-e.out:
				if !next.media || len(e.frame)+len(next.b) > maxFrame {
					m = next
					break batch
				}
				e.frame = append(e.frame, next.b...)
			default:
				break batch
			}
		}
		if !e.writeMessage(websocket.BinaryMessage, e.frame) {
			return false
		}
		if m.b == nil {
			return true
		}
	}
	return e.writeMessage(websocket.TextMessage, m.b)
}

func (e *endpoint) writeMessage(kind int, b []byte) bool {
	_ = e.ws.SetWriteDeadline(e.deadline())
	if err := e.ws.WriteMessage(kind, b); err != nil {
		e.stop()
		return false
	}
	return true
}

// stop tears the link down at once; run returns soon after.
func (e *endpoint) stop() {
	e.stopOnce.Do(func() {
		close(e.done)
		_ = e.ws.Close()
	})
}

// drain writes what is queued and a close frame, waits up to grace for the
// peer to answer it (closing a socket with unread input could reset the
// connection and lose the last messages), then stops the link.
func (e *endpoint) drain(grace time.Duration) {
	e.flushOnce.Do(func() { close(e.flush) })
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	select {
	case <-e.writerDone:
	case <-ctx.Done():
	}
	select {
	case <-e.readerDone:
	case <-ctx.Done():
	}
	e.stop()
}
