package sfulink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/media"
)

// recQueue is how many recorded packets may wait for one recording's
// sink on the signal side; a sink that falls further behind loses
// packets rather than hold up the link's reader.
const recQueue = 1024

// A node announces a track, and ends it, once per published track: a
// recording with more tracks live than maxRecordedTracks, or more control
// messages waiting than maxRecordEvents, is a node gone wrong, and the
// recording ends (with what was announced until then) rather than grow
// without bound.
const (
	maxRecordedTracks = 256
	maxRecordEvents   = 4 * recQueue
)

var (
	errRecordFlood = errors.New("the node announced more of a recording than it can have")
	errNoRecordEnd = errors.New("the node did not end a stopped recording")
)

// Record implements media.Recorder: the node records roomID and streams
// the media over the link. A lost link ends the recording with an error
// wrapping media.ErrUnavailable.
func (c *Client) Record(ctx context.Context, roomID string, sink media.RecordSink) (media.Recording, error) {
	if sink == nil {
		return nil, errors.New("record: no sink")
	}
	l, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	rr, err := l.newRecording(sink)
	if err != nil {
		return nil, err
	}
	err = l.open(ctx, message{Type: typeRecord, Rec: rr.id, Room: roomID, V: recordVersion}, message{Type: typeStopRecord, Rec: rr.id}, rr)
	if err != nil {
		return nil, fmt.Errorf("record room %s: %w", roomID, err)
	}
	return rr, nil
}

func (l *clientLink) newRecording(sink media.RecordSink) (*remoteRecording, error) {
	rr := &remoteRecording{link: l, id: l.nextRec.Add(1), sink: sink, live: map[uint32]struct{}{}}
	rr.init(false)
	if err := l.recs.add(rr.id, rr); err != nil {
		return nil, err
	}
	go rr.deliver()
	return rr, nil
}

// handleRecording dispatches a recording's control message from the read
// loop.
func (l *clientLink) handleRecording(m message) {
	if m.Type == typeRecordEnd {
		if rr := l.recs.take(m.Rec); rr != nil {
			var err error
			if m.Code != "" {
				err = fmt.Errorf("sfulink: node %s ended the recording: %w", l.c.url, remoteError(m))
			}
			rr.finish(err)
		}
		return
	}
	rr := l.recs.get(m.Rec)
	if rr == nil || m.Num == 0 {
		return // a recording that ended or was discarded
	}
	if m.Type == typeTrackEnd {
		rr.push(recEvent{kind: evEnd, num: m.Num})
		return
	}
	if m.Track == nil {
		l.c.log.Warn("sfulink track message without a track", "node", l.c.url)
		return
	}
	t, err := m.Track.recordedTrack()
	if err != nil {
		// Its packets, of a number never announced, are dropped.
		l.c.log.Warn("sfulink bad recorded track from node", "node", l.c.url, "err", err)
		return
	}
	rr.push(recEvent{kind: evTrack, num: m.Num, track: t})
}

// handleMedia hands the packets of a media message to their recordings,
// from the read loop.
func (l *clientLink) handleMedia(data []byte) {
	var rr *remoteRecording
	var id uint32
	err := decodeFrame(data, func(rec, num uint32, pkt []byte) {
		if rec != id {
			rr, id = l.recs.get(rec), rec
		}
		if rr != nil {
			rr.pushRTP(num, pkt)
		}
	})
	if err != nil {
		l.c.log.Warn("sfulink malformed media from node", "node", l.c.url, "err", err)
	}
}

// remoteRecording is a recording on the remote node; what the node sends
// of it is delivered to the sink through the inbox. The sink hears Ended
// only of a recording the node confirmed: Record fails otherwise.
type remoteRecording struct {
	inbox[recEvent]
	link *clientLink
	id   uint32
	sink media.RecordSink

	// under mu
	queuedRTP int
	live      map[uint32]struct{} // tracks announced and not ended, as the node sent them
	dropped   int64
	stopped   bool        // Stop was called
	overdue   *time.Timer // ends a stopped recording the node does not end
}

type recEvent struct {
	kind  byte
	num   uint32
	track media.RecordedTrack
	pkt   []byte // aliases the link message it came in
}

const (
	evTrack = iota + 1
	evRTP
	evEnd
)

func (rr *remoteRecording) push(e recEvent) {
	flood := ""
	rr.mu.Lock()
	if !rr.finished {
		_, known := rr.live[e.num]
		switch {
		case len(rr.queue)-rr.queuedRTP >= maxRecordEvents:
			flood = floodRecordingEvents
		case e.kind == evTrack && !known && len(rr.live) >= maxRecordedTracks:
			flood = floodRecordingTracks
		case e.kind == evTrack && known, e.kind == evEnd && !known:
			// a repeated announcement, or the end of a track never announced
		default:
			if e.kind == evTrack {
				rr.live[e.num] = struct{}{}
			} else {
				delete(rr.live, e.num)
			}
			rr.queue = append(rr.queue, e)
		}
		if flood != "" {
			rr.finished, rr.final = true, fmt.Errorf("sfulink: node %s: %w (%s)", rr.link.c.url, errRecordFlood, flood)
		}
	}
	rr.mu.Unlock()
	rr.signal()
	if flood != "" {
		rr.link.c.metrics.flood(flood)
		rr.link.recs.take(rr.id)
		rr.link.ep.send(message{Type: typeStopRecord, Rec: rr.id})
	}
}

func (rr *remoteRecording) pushRTP(num uint32, pkt []byte) {
	rr.mu.Lock()
	switch {
	case rr.finished:
	case rr.queuedRTP >= recQueue:
		rr.dropped++
	default:
		rr.queue = append(rr.queue, recEvent{kind: evRTP, num: num, pkt: pkt})
		rr.queuedRTP++
	}
	rr.mu.Unlock()
	rr.signal()
}

// droppedCount is how many packets the sink fell behind by.
func (rr *remoteRecording) droppedCount() int64 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.dropped
}

// discard ends a recording that did not start, dropping what is queued.
func (rr *remoteRecording) discard() {
	rr.link.recs.take(rr.id)
	rr.drop()
}

func (rr *remoteRecording) deliver() {
	defer rr.link.c.events.Done()
	tracks := map[uint32]media.TrackSink{} // announced and not ended; nil if the sink ignores it
	var pkt rtp.Packet
	final, started := rr.run(func(e *recEvent) { rr.apply(e, tracks, &pkt) }, func() { rr.queuedRTP = 0 })
	rr.mu.Lock()
	if rr.overdue != nil {
		rr.overdue.Stop()
	}
	rr.mu.Unlock()
	for _, ts := range tracks {
		if ts != nil {
			ts.End()
		}
	}
	if started {
		if dropped := rr.droppedCount(); dropped > 0 {
			rr.link.c.log.Warn("sfulink recording sink fell behind", "node", rr.link.c.url, "dropped", dropped)
		}
		rr.sink.Ended(final)
	}
}

// apply hands one event to the sink, on the delivery goroutine.
func (rr *remoteRecording) apply(e *recEvent, tracks map[uint32]media.TrackSink, pkt *rtp.Packet) {
	switch e.kind {
	case evTrack:
		if _, dup := tracks[e.num]; !dup {
			tracks[e.num] = rr.sink.Track(e.track)
		}
	case evRTP:
		ts := tracks[e.num]
		if ts == nil {
			return
		}
		if err := pkt.Unmarshal(e.pkt); err != nil {
			return
		}
		ts.WriteRTP(pkt)
		pkt.Payload = nil
	case evEnd:
		ts, ok := tracks[e.num]
		if !ok {
			return
		}
		delete(tracks, e.num)
		if ts != nil {
			ts.End()
		}
	}
}

// Keyframe implements media.Recording.
func (rr *remoteRecording) Keyframe(trackID string) {
	rr.mu.Lock()
	over := rr.finished || rr.stopped
	rr.mu.Unlock()
	if !over {
		rr.link.ep.send(message{Type: typeKeyframe, Rec: rr.id, TrackID: trackID})
	}
}

// Stop implements media.Recording: the node ends the recording, and its
// tracks' ends and the recording's end come back over the link. A node
// that has not ended it within the client's reply timeout has gone wrong:
// the recording then ends here, with an error wrapping errNoRecordEnd.
func (rr *remoteRecording) Stop() {
	rr.mu.Lock()
	over := rr.finished || rr.stopped
	rr.stopped = true
	if !over {
		rr.overdue = time.AfterFunc(rr.link.c.replyWait(), rr.endOverdue)
	}
	rr.mu.Unlock()
	if over {
		return
	}
	if !rr.link.ep.send(message{Type: typeStopRecord, Rec: rr.id}) {
		// The link is closing or congested: end here; whatever the node
		// still sends of the recording is dropped.
		if rr.link.recs.take(rr.id) == rr {
			rr.finish(fmt.Errorf("sfulink: stopping a recording on %s: link closing or congested: %w", rr.link.c.url, media.ErrUnavailable))
		}
	}
}

// endOverdue ends a stopped recording that the node did not end in time;
// whatever the node still sends of it is dropped.
func (rr *remoteRecording) endOverdue() {
	if rr.link.recs.take(rr.id) != rr {
		return // it ended meanwhile
	}
	url, wait := rr.link.c.url, rr.link.c.replyWait()
	rr.link.c.log.Warn("sfulink node did not end a stopped recording", "node", url, "after", wait)
	rr.finish(fmt.Errorf("sfulink: node %s, %s after stop: %w", url, wait, errNoRecordEnd))
}
