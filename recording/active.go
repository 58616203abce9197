package recording

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording/webm"
	"github.com/openconsult/openconsult/store"
)

// packetQueue bounds the packets waiting for the recording's goroutine
// (about two seconds of a three-person consult); beyond it packets are
// dropped and counted, and the gap is handled as loss.
const packetQueue = 2048

type packetEvent struct {
	sink *trackSink
	p    packet
}

// control events, which are never dropped.
type ctlKind int

const (
	ctlTrack ctlKind = iota
	ctlEnd
	ctlEnded
	ctlStop
	ctlForce
)

type ctlEvent struct {
	kind   ctlKind
	sink   *trackSink
	err    error
	reason string
}

// active is one running recording: the media node's RecordSink, and the
// goroutine that turns its packets into files.
type active struct {
	svc     *Service
	id      string
	req     StartRequest
	started time.Time
	node    media.Recording

	packets chan packetEvent
	dropped atomic.Int64

	mu   sync.Mutex
	ctl  []ctlEvent
	wake chan struct{}

	done    chan struct{}
	stopped atomic.Bool

	// owned by run
	pipes   map[*trackSink]*trackPipe
	members map[string][]*file
	up      *uploader
	reason  string
	nodeErr error
	ending  bool // Stop or Ended seen: finish once the node is done
}

func newActive(s *Service, id string, req StartRequest, started time.Time) *active {
	return &active{svc: s, id: id, req: req, started: started, packets: make(chan packetEvent, packetQueue),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		pipes: map[*trackSink]*trackPipe{}, members: map[string][]*file{}}
}

func (a *active) ID() string            { return a.id }
func (a *active) Done() <-chan struct{} { return a.done }
func (a *active) post(e ctlEvent)       { a.mu.Lock(); a.ctl = append(a.ctl, e); a.mu.Unlock(); a.signal() }
func (a *active) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}
func (a *active) since(t time.Time) time.Duration { return t.Sub(a.started) }

// Track implements media.RecordSink.
func (a *active) Track(t media.RecordedTrack) media.TrackSink {
	if codec, _ := codecOf(t); codec == "" {
		a.svc.Log.Warn("track not recorded: codec", "recording", a.id, "member", t.MemberID, "track", t.TrackID, "codec", t.Codec.MimeType)
		return nil
	}
	s := &trackSink{a: a, info: t}
	a.post(ctlEvent{kind: ctlTrack, sink: s})
	return s
}

// Ended implements media.RecordSink.
func (a *active) Ended(err error) { a.post(ctlEvent{kind: ctlEnded, err: err}) }

// Stop implements Active.
func (a *active) Stop(ctx context.Context, reason string) error {
	if a.stopped.CompareAndSwap(false, true) {
		a.post(ctlEvent{kind: ctlStop, reason: reason})
		if a.node != nil {
			a.node.Stop()
		}
		// Fires whatever ctx does, so a node that never ends the
		// recording cannot keep it running; after the end it is a no-op.
		time.AfterFunc(a.svc.grace(), func() { a.post(ctlEvent{kind: ctlForce}) })
	}
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trackSink is the media node's handle on one recorded track.
type trackSink struct {
	a    *active
	info media.RecordedTrack
}

// WriteRTP copies the packet for the recording's goroutine, or drops it
// when that goroutine is behind: it never blocks the node.
func (s *trackSink) WriteRTP(p *rtp.Packet) {
	e := packetEvent{sink: s, p: packet{seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker,
		payload: append([]byte(nil), p.Payload...), at: s.a.since(s.a.svc.Now())}}
	select {
	case s.a.packets <- e:
	default:
		s.a.dropped.Add(1)
	}
}

// End implements media.TrackSink.
func (s *trackSink) End() { s.a.post(ctlEvent{kind: ctlEnd, sink: s}) }

// run owns the recording's files until it ends.
func (a *active) run() {
	defer close(a.done)
	defer a.svc.forget(a.id)
	a.up = newUploader(a.svc, a.id)
	go a.up.run()
	for !a.finished() {
		select {
		case e := <-a.packets:
			a.packet(e)
		case <-a.wake:
			a.control()
		}
	}
	a.drain()
	a.finish()
}

// drain takes the packets queued now (not those that keep arriving, so
// that control events are never starved).
func (a *active) drain() {
	for n := len(a.packets); n > 0; n-- {
		a.packet(<-a.packets)
	}
}

// finished: the node ended the recording (or Stop gave up waiting).
func (a *active) finished() bool { return a.ending }

func (a *active) control() {
	a.mu.Lock()
	events := a.ctl
	a.ctl = nil
	a.mu.Unlock()
	// A track's packets are queued before its End is posted: every packet
	// sent before the events just taken is in the queue now, and goes
	// first.
	a.drain()
	for _, e := range events {
		switch e.kind {
		case ctlTrack:
			a.pipe(e.sink)
		case ctlEnd:
			if p := a.pipes[e.sink]; p != nil {
				a.endTrack(p)
			}
		case ctlStop:
			if a.reason == "" {
				a.reason = e.reason
			}
		case ctlEnded:
			a.nodeErr, a.ending = e.err, true
		case ctlForce:
			if a.nodeErr == nil {
				a.nodeErr = errors.New("the media node did not end the recording in time")
			}
			a.ending = true
		}
	}
}

// pipe returns the pipeline of a track, creating it and placing it in a
// file of its member on first sight.
func (a *active) pipe(s *trackSink) *trackPipe {
	if p, ok := a.pipes[s]; ok {
		return p
	}
	trackID := s.info.TrackID
	p := newTrackPipe(s.info, func() {
		if a.node != nil {
			a.node.Keyframe(trackID)
		}
	})
	a.pipes[s] = p
	files := a.members[s.info.MemberID]
	if n := len(files); n > 0 && files[n-1].accepts(p) {
		files[n-1].add(p)
	} else {
		f := &file{member: s.info.MemberID, zero: -1}
		f.add(p)
		a.members[s.info.MemberID] = append(files, f)
	}
	if p.kind == webm.Video {
		p.askKeyframe(0)
	}
	return p
}

func (a *active) packet(e packetEvent) {
	p := a.pipe(e.sink)
	if p.ended {
		return
	}
	f := p.file
	if f.zero < 0 {
		f.zero = e.p.at
	}
	p.push(&e.p, func(fr frame) { a.frame(p, fr) })
}

func (a *active) endTrack(p *trackPipe) {
	p.flush(func(fr frame) { a.frame(p, fr) })
	p.ended = true
	if f := p.file; f.ended() {
		a.finishFile(f)
	}
}

// finish ends every file, waits for the uploads, and records and audits
// the end of the recording.
func (a *active) finish() {
	for _, p := range a.pipes {
		if !p.ended {
			a.endTrack(p)
		}
	}
	for _, files := range a.members {
		for _, f := range files {
			a.finishFile(f)
		}
	}
	failed := a.up.close()
	state, reason := store.RecordingComplete, a.reason
	if a.nodeErr != nil || failed {
		state = store.RecordingPartial
	}
	if a.nodeErr != nil && reason == "" {
		reason = "node-failed"
	}
	if reason == "" {
		reason = "ended"
	}
	end := a.svc.Now().UTC().Truncate(time.Millisecond)
	d := end.Sub(a.started)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.svc.Store.EndRecording(ctx, a.id, end, state, reason, d); err != nil {
		a.svc.Log.Error("end recording", "recording", a.id, "err", err)
	}
	fields := map[string]string{"recording": a.id, "reason": reason, "state": state, "duration_ms": ms(d)}
	if n := a.dropped.Load(); n > 0 {
		fields["dropped_packets"] = itoa(n)
	}
	if err := a.svc.Audit.RecordSession(ctx, EventStopped, a.req.ConsultID, "", "recording stopped", fields); err != nil {
		a.svc.Log.Error("audit recording stopped", "recording", a.id, "err", err)
	}
	log := a.svc.Log.Info
	if a.nodeErr != nil {
		log = a.svc.Log.Warn
	}
	log("recording stopped", "consult", a.req.ConsultID, "recording", a.id, "reason", reason, "state", state, "node_err", a.nodeErr, "dropped_packets", a.dropped.Load())
}
