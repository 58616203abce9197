package nodetest

import (
	"fmt"
	"sync"

	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/media"
)

// RecordLog is a media.RecordSink that notes what a recording receives,
// and every breach of the sink contract's order: a packet after its
// track's End, an End twice, Ended before every track Ended, or Ended
// twice.
type RecordLog struct {
	mu       sync.Mutex
	tracks   []*RecordedTrack
	ended    chan error
	endedN   int
	breaches []string
}

// NewRecordLog returns an empty RecordLog.
func NewRecordLog() *RecordLog { return &RecordLog{ended: make(chan error, 1)} }

// RecordedTrack is one track a RecordLog was given.
type RecordedTrack struct {
	media.RecordedTrack
	log *RecordLog

	// Guarded by log.mu.
	packets   int64
	keyframes int64
	video     []Packet // capped at maxLog
	ended     bool
}

// Track implements media.RecordSink.
func (l *RecordLog) Track(t media.RecordedTrack) media.TrackSink {
	rt := &RecordedTrack{RecordedTrack: t, log: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.endedN > 0 {
		l.breaches = append(l.breaches, "track "+t.TrackID+" announced after Ended")
	}
	l.tracks = append(l.tracks, rt)
	return rt
}

// Ended implements media.RecordSink.
func (l *RecordLog) Ended(err error) {
	l.mu.Lock()
	l.endedN++
	if l.endedN > 1 {
		l.breaches = append(l.breaches, "Ended twice")
	}
	for _, t := range l.tracks {
		if !t.ended {
			l.breaches = append(l.breaches, "Ended before track "+t.TrackID+" ended")
		}
	}
	l.mu.Unlock()
	select {
	case l.ended <- err:
	default:
	}
}

// WriteRTP implements media.TrackSink.
func (t *RecordedTrack) WriteRTP(p *rtp.Packet) {
	var e Packet
	if t.Kind.String() == "video" {
		e = notePacket(p)
	}
	l := t.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.ended {
		l.breaches = append(l.breaches, "packet of track "+t.TrackID+" after its End")
		return
	}
	t.packets++
	if e.Keyframe {
		t.keyframes++
	}
	if t.Kind.String() == "video" && len(t.video) < maxLog {
		t.video = append(t.video, e)
	}
}

// End implements media.TrackSink.
func (t *RecordedTrack) End() {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	if t.ended {
		t.log.breaches = append(t.log.breaches, "track "+t.TrackID+" ended twice")
	}
	t.ended = true
}

// Packets returns how many packets the track received.
func (t *RecordedTrack) Packets() int64 {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	return t.packets
}

// Keyframes returns how many keyframes the track received.
func (t *RecordedTrack) Keyframes() int64 {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	return t.keyframes
}

// Ended reports whether the track ended.
func (t *RecordedTrack) Ended() bool {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	return t.ended
}

// Log returns the video packets the track received, in order.
func (t *RecordedTrack) Log() []Packet {
	t.log.mu.Lock()
	defer t.log.mu.Unlock()
	return append([]Packet(nil), t.video...)
}

// Live returns the newest track announced as id that has not ended, or
// nil.
func (l *RecordLog) Live(id string) *RecordedTrack {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.tracks) - 1; i >= 0; i-- {
		if t := l.tracks[i]; t.TrackID == id && !t.ended {
			return t
		}
	}
	return nil
}

// Tracks returns every track announced so far.
func (l *RecordLog) Tracks() []*RecordedTrack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*RecordedTrack(nil), l.tracks...)
}

// EndedCh receives the error Ended reported.
func (l *RecordLog) EndedCh() <-chan error { return l.ended }

// Breaches returns the contract breaches seen so far.
func (l *RecordLog) Breaches() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.breaches...)
}

func (l *RecordLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ""
	for _, t := range l.tracks {
		s += fmt.Sprintf("[%s %s %s packets=%d keyframes=%d ended=%v] ", t.TrackID, t.Kind, t.Codec.MimeType, t.packets, t.keyframes, t.ended)
	}
	return s
}
