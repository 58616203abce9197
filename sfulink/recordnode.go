package sfulink

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/media"
)

// maxTrackID bounds a keyframe request's track id: a member id, a slash
// and the publisher's track id.
const maxTrackID = 2*maxID + 1

// serverRecording is a recording a signal process started on this node:
// the node's media.RecordSink, which puts what the node records onto the
// link.
type serverRecording struct {
	conn    *serverConn
	id      uint32
	room    string
	nextNum atomic.Uint32
	dropped atomic.Int64 // packets the link could not take

	mu      sync.Mutex
	rec     media.Recording // set once Record returned
	stop    bool            // stop asked before Record returned
	ended   bool            // the recording is over for the link
	endErr  error           // why, when it ended before it started
	started bool            // the record request's result went out
}

// record starts a recording of m.Room for the link; it runs Record on a
// worker goroutine, as joins do, so the read loop never waits for the
// node.
func (c *serverConn) record(m message) {
	recorder, canRecord := c.srv.node.(media.Recorder)
	switch {
	case m.ID == 0:
		c.fail(m, codeBadRequest, "record without a request id")
		return
	case m.Rec == 0 || m.Room == "" || len(m.Room) > maxID:
		c.fail(m, codeBadRequest, "record needs rec and a room of at most 256 bytes")
		return
	case m.V != recordVersion:
		c.fail(m, codeBadRequest, fmt.Sprintf("recording stream version %d; this node speaks %d", m.V, recordVersion))
		return
	case !canRecord:
		c.fail(m, codeFailed, "this media node does not record")
		return
	case c.srv.isClosing():
		c.fail(m, codeShutdown, "media node shutting down")
		return
	}
	sr := &serverRecording{conn: c, id: m.Rec, room: m.Room}
	c.mu.Lock()
	if c.recs == nil {
		c.mu.Unlock()
		return
	}
	if _, dup := c.recs[m.Rec]; dup {
		c.mu.Unlock()
		c.fail(m, codeBadRequest, "recording id already in use")
		return
	}
	c.recs[m.Rec] = sr
	c.workers.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.workers.Done()
		ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
		rec, err := recorder.Record(ctx, m.Room, sr)
		cancel()
		if err != nil {
			c.forget(sr)
			c.result(m.ID, err, nil)
			return
		}
		sr.mu.Lock()
		sr.rec = rec
		if sr.ended {
			// It ended while starting (the room closed, the node or the
			// link shut down): the result says so, no recordend follows.
			endErr := sr.endErr
			sr.mu.Unlock()
			rec.Stop()
			c.forget(sr)
			if endErr == nil {
				endErr = &Error{Code: codeUnavailable, Msg: "recording ended while starting"}
			}
			c.result(m.ID, endErr, nil)
			return
		}
		// Under sr.mu, as recordend goes out: signal hears of the start
		// before it hears of the end.
		sr.started = true
		c.result(m.ID, nil, nil)
		stop := sr.stop
		sr.mu.Unlock()
		if stop {
			rec.Stop()
		}
		c.srv.log.Info("sfulink recording started", "room", m.Room, "peer", c.peer)
	}()
}

// recordOp applies a keyframe or stoprecord message; one for a recording
// that ended is ignored, as close is for a session.
func (c *serverConn) recordOp(m message) {
	if len(m.TrackID) > maxTrackID {
		c.fail(m, codeBadRequest, "track id too long")
		return
	}
	c.mu.Lock()
	sr := c.recs[m.Rec]
	c.mu.Unlock()
	if sr == nil {
		return
	}
	sr.mu.Lock()
	rec := sr.rec
	if m.Type == typeStopRecord {
		sr.stop = true
	}
	sr.mu.Unlock()
	if rec == nil {
		return
	}
	if m.Type == typeStopRecord {
		rec.Stop()
	} else {
		rec.Keyframe(m.TrackID)
	}
}

// forget takes sr off the link.
func (c *serverConn) forget(sr *serverRecording) {
	c.mu.Lock()
	if c.recs[sr.id] == sr {
		delete(c.recs, sr.id)
	}
	c.mu.Unlock()
}

// endRecordings stops every recording of the link; msg, when not nil, is
// sent for each (with its id) as its recordend, and the node's own end
// then goes unsent.
func (c *serverConn) endRecordings(msg *message) {
	c.mu.Lock()
	all := make([]*serverRecording, 0, len(c.recs))
	for _, sr := range c.recs {
		all = append(all, sr)
	}
	if msg == nil {
		c.recs = nil
	}
	c.mu.Unlock()
	for _, sr := range all {
		sr.mu.Lock()
		if msg != nil && !sr.ended && sr.started {
			m := *msg
			m.Rec = sr.id
			c.send(m)
		}
		if !sr.ended && msg != nil {
			sr.endErr = &Error{Code: msg.Code, Msg: msg.Error}
		}
		sr.ended, sr.stop = true, true
		rec := sr.rec
		sr.mu.Unlock()
		c.forget(sr)
		if rec != nil {
			rec.Stop()
		}
	}
}

// Track implements media.RecordSink.
func (sr *serverRecording) Track(t media.RecordedTrack) media.TrackSink {
	ts := &serverTrack{sr: sr, num: sr.nextNum.Add(1)}
	sr.conn.send(message{Type: typeTrack, Rec: sr.id, Num: ts.num, Track: trackToWire(t)})
	return ts
}

// Ended implements media.RecordSink.
func (sr *serverRecording) Ended(err error) {
	c := sr.conn
	sr.mu.Lock()
	if !sr.ended {
		sr.ended, sr.endErr = true, err
		if sr.started {
			m := message{Type: typeRecordEnd, Rec: sr.id}
			if err != nil {
				m.Code, m.Error = codeOf(err), err.Error()
			}
			c.send(m)
		}
	}
	sr.mu.Unlock()
	c.forget(sr)
	c.srv.log.Info("sfulink recording ended", "room", sr.room, "peer", c.peer,
		"dropped", sr.dropped.Load(), "err", err)
}

// serverTrack is one recorded track on the link.
type serverTrack struct {
	sr  *serverRecording
	num uint32
}

// WriteRTP implements media.TrackSink: the packet is queued for the
// link's writer, or dropped when the link cannot keep up.
func (ts *serverTrack) WriteRTP(p *rtp.Packet) {
	b, err := encodeRecord(ts.sr.id, ts.num, p)
	if err != nil || !ts.sr.conn.ep.sendMedia(b) {
		ts.sr.dropped.Add(1)
	}
}

// End implements media.TrackSink.
func (ts *serverTrack) End() {
	ts.sr.conn.send(message{Type: typeTrackEnd, Rec: ts.sr.id, Num: ts.num})
}
