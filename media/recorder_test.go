package media_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// stuckSink is a test double of a recorder that cannot keep up: each
// WriteRTP takes 50 ms, far more than the packets' pace.
type stuckSink struct {
	writes atomic.Int64
	ended  chan error
}

func (s *stuckSink) Track(media.RecordedTrack) media.TrackSink { return s }
func (s *stuckSink) Ended(err error)                           { s.ended <- err }
func (s *stuckSink) End()                                      {}
func (s *stuckSink) WriteRTP(*rtp.Packet) {
	s.writes.Add(1)
	time.Sleep(50 * time.Millisecond)
}

// TestSlowRecorderDoesNotStallTheRoom: a recorder that takes far longer
// than the packets' pace loses its own packets; the members receive all
// theirs.
func TestSlowRecorderDoesNotStallTheRoom(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings()})
	r := nodetest.NewRoom(t)
	pub := r.Join(sfu, "pub", nodetest.Publish{Video: true, Audio: true})
	sub := r.Join(sfu, "sub", nodetest.Publish{})
	eventually.True(t, 20*time.Second, "media at the subscriber", func() bool { return sub.From("pub/pub") > 20 })
	sink := &stuckSink{ended: make(chan error, 1)}
	rec, err := sfu.Record(t.Context(), "c_1", sink)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Stop()
	eventually.True(t, 10*time.Second, "the recorder writing", func() bool { return sink.writes.Load() > 0 })
	sent0, got0 := pub.Sent(), sub.From("pub/pub")
	time.Sleep(2 * time.Second)
	sent, got := pub.Sent()-sent0, sub.From("pub/pub")-got0
	if got < sent*9/10 {
		t.Errorf("subscriber received %d of %d packets sent while a slow recorder ran", got, sent)
	}
	if w := sink.writes.Load(); w > 100 {
		t.Errorf("a recorder that takes 50 ms a packet wrote %d packets in about 2 s", w)
	}
}

// TestShutdownEndsRecording: a node that shuts down ends its recordings
// with an error wrapping ErrUnavailable, after ending their tracks.
func TestShutdownEndsRecording(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings()})
	r := nodetest.NewRoom(t)
	r.Join(sfu, "a", nodetest.Publish{Video: true, Audio: true})
	sink := nodetest.NewRecordLog()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := sfu.Record(ctx, "c_1", sink); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 20*time.Second, "video recorded", func() bool {
		tr := sink.Live("a/video")
		return tr != nil && tr.Packets() > 10
	})
	sfu.Close()
	select {
	case err := <-sink.EndedCh():
		if !errors.Is(err, media.ErrUnavailable) || !errors.Is(err, media.ErrShutdown) {
			t.Fatalf("Ended(%v) on shutdown, want ErrShutdown and ErrUnavailable", err)
		}
	default:
		t.Fatal("Close returned before the recording ended")
	}
	for _, tr := range sink.Tracks() {
		if !tr.Ended() {
			t.Errorf("track %s did not end on shutdown", tr.TrackID)
		}
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
	if _, err := sfu.Record(ctx, "c_1", nodetest.NewRecordLog()); err == nil {
		t.Fatal("a closed node started a recording")
	}
}
