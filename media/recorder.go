package media

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// recording is one Recorder subscriber in a room. Each track it takes is a
// downTrack like a participant's, without a peer connection: the same
// bounded queue and writer goroutine, so a slow sink only loses its own
// packets, and the same rewriting, so a simulcast video stays one stream
// across layer switches. Its writer hands packets to the sink instead of
// an SRTP stream.
type recording struct {
	sfu  *SFU
	room *room
	sink RecordSink
	poke chan struct{} // wakes the layer allocator
	done chan struct{} // closed when the recording ends

	// Guarded by sfu.mu, like the room.
	tracks map[string]*downTrack // by publication key
	ended  bool

	writers sync.WaitGroup // the tracks' writer goroutines
}

// Record implements Recorder. The recording takes every published track
// of the room and every track published later: audio as it comes, video
// on the best simulcast layer received.
func (s *SFU) Record(ctx context.Context, roomID string, sink RecordSink) (Recording, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("record: no sink")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	if r == nil {
		return nil, fmt.Errorf("record %s: %w", roomID, ErrNoRoom)
	}
	rec := &recording{sfu: s, room: r, sink: sink, poke: make(chan struct{}, 1), done: make(chan struct{}),
		tracks: map[string]*downTrack{}}
	if !s.goOwned(rec.allocLoop) {
		return nil, fmt.Errorf("record %s: %w: %w", roomID, ErrShutdown, ErrUnavailable)
	}
	r.recs[rec] = struct{}{}
	s.recordings++
	for _, pub := range r.pubs {
		rec.addLocked(pub)
	}
	s.log.Info("sfu recording started", "room", roomID, "tracks", len(rec.tracks))
	return rec, nil
}

// addLocked starts recording pub; the caller holds sfu.mu.
func (rec *recording) addLocked(pub *publication) {
	if rec.ended {
		return
	}
	d := newDownTrack(pub, nil)
	d.rec = rec
	w := &recWriter{}
	d.bound.Store(&binding{ssrc: rand.Uint32(), pt: uint8(pub.codec.PayloadType), ws: w})
	kind := webrtc.RTPCodecTypeVideo
	if pub.kind == kindAudio {
		kind = webrtc.RTPCodecTypeAudio
	}
	t := RecordedTrack{MemberID: pub.owner.member, TrackID: pub.key, Kind: kind, Codec: pub.codec}
	rec.writers.Add(1)
	if !rec.sfu.goOwned(func() { rec.runTrack(d, w, t) }) {
		rec.writers.Done()
		return
	}
	if old := rec.tracks[pub.key]; old != nil {
		old.pub.removeSubLocked(old)
		old.stop()
	}
	rec.tracks[pub.key] = d
	subs := append(append([]*downTrack(nil), *pub.subs.Load()...), d)
	pub.subs.Store(&subs)
	if d.kind == kindVideo {
		pub.requestKeyframe(int(d.target.Load()))
	}
}

// runTrack is a recorded track's writer goroutine: it announces the track,
// writes its packets to the sink until the track or the recording ends,
// then ends it, all on this one goroutine.
func (rec *recording) runTrack(d *downTrack, w *recWriter, t RecordedTrack) {
	defer rec.writers.Done()
	w.ts = rec.sink.Track(t)
	if w.ts == nil {
		d.paused.Store(true) // the sink ignores it: nothing to queue
	}
	d.run()
	if w.ts != nil {
		w.ts.End()
	}
}

// recWriter is a recorded track's webrtc.TrackLocalWriter: the downTrack
// writes to it as it would to a subscriber's SRTP stream.
type recWriter struct {
	ts  TrackSink  // nil when the sink ignores the track
	pkt rtp.Packet // reused for every packet
}

func (w *recWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.ts != nil {
		w.pkt.Header = *h
		w.pkt.Payload = payload
		w.ts.WriteRTP(&w.pkt)
		w.pkt.Payload = nil
	}
	return 12 + len(payload), nil
}

func (w *recWriter) Write(b []byte) (int, error) {
	return 0, errors.New("recording: raw RTP writes are not used")
}

// allocLoop keeps every recorded simulcast video on its best layer: the
// highest one being received, which changes as a publisher's uplink
// pauses and resumes its upper layers.
func (rec *recording) allocLoop() {
	t := time.NewTicker(allocTick)
	defer t.Stop()
	for {
		select {
		case <-rec.done:
			return
		case <-t.C:
		case <-rec.poke:
		}
		rec.allocate()
	}
}

func (rec *recording) wake() {
	select {
	case rec.poke <- struct{}{}:
	default:
	}
}

func (rec *recording) allocate() {
	s := rec.sfu
	s.mu.Lock()
	var sim []*downTrack
	for _, d := range rec.tracks {
		if d.pub.simulcast && !d.paused.Load() {
			sim = append(sim, d)
		}
	}
	s.mu.Unlock()
	now := s.now()
	for _, d := range sim {
		target := d.pub.bestLayer(maxLayers-1, now)
		if target < 0 {
			continue
		}
		if old := d.target.Swap(int32(target)); int(old) != target && int32(target) != d.current.Load() {
			d.pub.requestKeyframe(target)
		}
	}
}

// Keyframe implements Recording.
func (rec *recording) Keyframe(trackID string) {
	rec.sfu.mu.Lock()
	d := rec.tracks[trackID]
	rec.sfu.mu.Unlock()
	if d == nil || d.kind != kindVideo {
		return
	}
	l := d.current.Load()
	if l < 0 {
		l = d.target.Load()
	}
	d.pub.requestKeyframe(int(l))
}

// Stop implements Recording.
func (rec *recording) Stop() {
	rec.sfu.mu.Lock()
	rec.finishLocked(nil)
	rec.sfu.mu.Unlock()
}

// finishLocked ends the recording once: its tracks stop, and a goroutine
// waits for their writers to End them, then reports reason through
// Ended. The caller holds sfu.mu, which orders the goroutine before the
// wait in SFU.Close.
func (rec *recording) finishLocked(reason error) {
	if rec.ended {
		return
	}
	rec.ended = true
	rec.sfu.recordings--
	delete(rec.room.recs, rec)
	close(rec.done)
	for key, d := range rec.tracks {
		d.pub.removeSubLocked(d)
		d.stop()
		delete(rec.tracks, key)
	}
	s := rec.sfu
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rec.writers.Wait()
		s.log.Info("sfu recording ended", "room", rec.room.id, "reason", reasonText(reason))
		rec.sink.Ended(reason)
	}()
}

// trackEndedLocked forgets a recorded track whose publication ended; its
// writer Ends it. The caller holds sfu.mu.
func (rec *recording) trackEndedLocked(d *downTrack) {
	if rec.tracks[d.pub.key] == d {
		delete(rec.tracks, d.pub.key)
	}
}
