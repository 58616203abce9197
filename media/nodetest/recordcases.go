package nodetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
)

// recorder returns node as a media.Recorder; every node records.
func recorder(t *testing.T, node media.Node) media.Recorder {
	t.Helper()
	r, ok := node.(media.Recorder)
	if !ok {
		t.Fatalf("%T does not implement media.Recorder", node)
	}
	return r
}

// startRecording records room c_1 of node into a new RecordLog, and stops
// the recording when the test ends.
func startRecording(t *testing.T, node media.Node) (media.Recording, *RecordLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sink := NewRecordLog()
	rec, err := recorder(t, node).Record(ctx, "c_1", sink)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	t.Cleanup(rec.Stop)
	return rec, sink
}

// recordedFlows waits until track id is announced to sink with kind and
// codec mime, and received at least n packets.
func recordedFlows(t *testing.T, sink *RecordLog, id string, kind webrtc.RTPCodecType, mime string, n int64) *RecordedTrack {
	t.Helper()
	var tr *RecordedTrack
	eventually.True(t, 20*time.Second, id+" recorded", func() bool {
		tr = sink.Live(id)
		return tr != nil && tr.Packets() >= n
	})
	if tr.Kind != kind || !strings.EqualFold(tr.Codec.MimeType, mime) || tr.MemberID != strings.Split(id, "/")[0] {
		t.Fatalf("track %s recorded as %s %s of member %q, want %s %s", id, tr.Kind, tr.Codec.MimeType, tr.MemberID, kind, mime)
	}
	return tr
}

// recordConsult: a recording takes every member's audio and the best
// layer of their video, in one continuous stream per track; asks for
// keyframes; is told of a member who publishes later; ends a leaving
// member's tracks; and Stop ends every track before Ended(nil).
func recordConsult(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := recorder(t, node).Record(ctx, "c_nobody", NewRecordLog()); !errors.Is(err, media.ErrNoRoom) {
		t.Fatalf("recording a room nobody joined: %v, want ErrNoRoom", err)
	}

	r := NewRoom(t)
	a := r.Join(node, "a", Publish{Simulcast: true, Audio: true})
	b := r.Join(node, "b", Publish{Video: true, Audio: true})
	WaitAllReceive(t, []*Participant{a, b}, 20, 20*time.Second)
	rec, sink := startRecording(t, node)
	eventually.True(t, 5*time.Second, "the node to count the recording", func() bool { return node.Load().Recordings == 1 })

	aVideo := recordedFlows(t, sink, "a/video", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 50)
	recordedFlows(t, sink, "a/audio", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 25)
	bVideo := recordedFlows(t, sink, "b/video", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 50)
	bAudio := recordedFlows(t, sink, "b/audio", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 25)

	// The best simulcast layer, reached at a keyframe, in one stream.
	eventually.True(t, 10*time.Second, "a's full layer recorded", func() bool {
		log := aVideo.Log()
		if len(log) < 30 {
			return false
		}
		for _, e := range log[len(log)-30:] {
			if e.Layer != 'f' {
				return false
			}
		}
		return true
	})
	CheckContinuous(t, aVideo.Log())
	CheckContinuous(t, bVideo.Log())

	// A keyframe when the recorder asks for one (after loss), and none
	// that nobody asked for in between.
	eventually.True(t, 10*time.Second, "b's video recorded from a keyframe on", func() bool { return bVideo.Keyframes() > 0 })
	// The node throttles keyframe requests per publisher (one was just
	// answered), so the recorder asks again now and then, as after loss.
	before := bVideo.Keyframes()
	rec.Keyframe("nobody/video") // ignored
	var asked time.Time
	eventually.True(t, 5*time.Second, "a keyframe after the recorder asked", func() bool {
		if time.Since(asked) > 200*time.Millisecond {
			rec.Keyframe("b/video")
			asked = time.Now()
		}
		return bVideo.Keyframes() > before
	})

	// A member who starts publishing later is recorded too.
	r.Join(node, "c", Publish{Video: true})
	recordedFlows(t, sink, "c/video", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 50)

	// A member who leaves ends their tracks; the others go on.
	b.Session.Close()
	eventually.True(t, 10*time.Second, "b's tracks ended", func() bool { return bVideo.Ended() && bAudio.Ended() })
	n := aVideo.Packets()
	eventually.True(t, 10*time.Second, "a still recorded", func() bool { return aVideo.Packets() > n+50 })
	if aVideo.Ended() {
		t.Fatal("a's video ended when b left")
	}

	rec.Stop()
	select {
	case err := <-sink.EndedCh():
		if err != nil {
			t.Fatalf("Ended(%v) after Stop, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no Ended after Stop: %v", sink)
	}
	for _, tr := range sink.Tracks() {
		if !tr.Ended() {
			t.Errorf("track %s did not end on Stop", tr.TrackID)
		}
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
	eventually.True(t, 5*time.Second, "the node to count no recording", func() bool { return node.Load().Recordings == 0 })
	rec.Stop() // again: nothing happens
	// The room goes on without its recorder.
	n = a.From("c/c")
	WaitAllReceive(t, []*Participant{a}, n+20, 10*time.Second)
}

// recordingEndsWithRoom: when the last member leaves, the recording ends
// with ErrRoomClosed, after ending its tracks.
func recordingEndsWithRoom(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	a := r.Join(node, "a", Publish{Video: true, Audio: true})
	_, sink := startRecording(t, node)
	video := recordedFlows(t, sink, "a/video", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 20)
	a.Session.Close()
	select {
	case err := <-sink.EndedCh():
		if !errors.Is(err, media.ErrRoomClosed) {
			t.Fatalf("Ended(%v) when the room closed, want ErrRoomClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no Ended when the room closed: %v", sink)
	}
	if !video.Ended() {
		t.Fatal("the track did not end with the room")
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
}
