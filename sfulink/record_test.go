package sfulink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// recordVia starts a participant publishing audio and video in c_1 on
// node (a client of the node at the end of the link), records it, and
// waits for the video to reach the sink.
func recordVia(t *testing.T, node media.Node, recorder media.Recorder) (*nodetest.RecordLog, *nodetest.RecordedTrack) {
	t.Helper()
	r := nodetest.NewRoom(t)
	r.Join(node, "a", nodetest.Publish{Video: true, Audio: true})
	sink := nodetest.NewRecordLog()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rec, err := recorder.Record(ctx, "c_1", sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Stop)
	var video *nodetest.RecordedTrack
	eventually.True(t, 20*time.Second, "video recorded over the link", func() bool {
		video = sink.Live("a/video")
		return video != nil && video.Packets() > 20
	})
	return sink, video
}

// TestLinkLossEndsRecording: a node that goes silent ends its recordings
// on the signal side with ErrUnavailable, after ending their tracks, and
// the node stops recording for the link it lost.
func TestLinkLossEndsRecording(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 0)
	px := startProxy(t, n.ln.Addr().String())
	c := newTestClient(t, px.url, clientTLS(t, p))
	sink, video := recordVia(t, c, c)
	if l := n.sfu.Load(); l.Recordings != 1 {
		t.Fatalf("node load %+v while recording", l)
	}

	px.cutOff()
	select {
	case err := <-sink.EndedCh():
		if !errors.Is(err, media.ErrUnavailable) {
			t.Fatalf("Ended(%v) when the link was lost, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no Ended after the link was lost: %v", sink)
	}
	if !video.Ended() {
		t.Fatal("the track did not end with the link")
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
	// The node notices the silent link too, which stops its recordings.
	eventually.True(t, 5*time.Second, "the node to stop the lost link's recording", func() bool { return n.sfu.Load().Recordings == 0 })
}

// TestNodeShutdownEndsRecordingWithShutdown: a node that shuts down tells
// signal, which ends the recording with an error wrapping ErrUnavailable.
func TestNodeShutdownEndsRecordingWithShutdown(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 0)
	c := newTestClient(t, n.url, clientTLS(t, p))
	sink, _ := recordVia(t, c, c)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sink.EndedCh():
		var linkErr *Error
		if !errors.Is(err, media.ErrUnavailable) || !errors.As(err, &linkErr) || linkErr.Code != codeShutdown {
			t.Fatalf("Ended(%v) when the node shut down, want code shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no Ended after the node shut down: %v", sink)
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
}

// TestMediaQueueLeavesRoomForControl: recorded media that the link cannot
// carry is dropped rather than crowding out control messages; a link with
// a full media queue still takes a full queue of control messages.
func TestMediaQueueLeavesRoomForControl(t *testing.T) {
	e := &endpoint{out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{})}
	rec := bytes.Repeat([]byte{1}, 100)
	n := 0
	for e.sendMedia(rec) {
		n++
	}
	if n != mediaQueue {
		t.Fatalf("%d media records queued, want %d", n, mediaQueue)
	}
	for i := range sendQueue {
		if !e.send(message{Type: typeTrackEnd, Rec: 1, Num: 1}) {
			t.Fatalf("control message %d refused behind a full media queue", i)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var data []byte
	data = append(data, mediaVersion)
	want := []*rtp.Packet{
		{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 7, Timestamp: 960, SSRC: 1}, Payload: []byte{1, 2, 3}},
		{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 65535, Timestamp: 3000, SSRC: 2, Marker: true}, Payload: bytes.Repeat([]byte{9}, 1200)},
	}
	for i, p := range want {
		b, err := encodeRecord(uint32(i+1), uint32(10+i), p)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b...)
	}
	i := 0
	err := decodeFrame(data, func(rec, num uint32, pkt []byte) {
		var got rtp.Packet
		if err := got.Unmarshal(pkt); err != nil {
			t.Fatal(err)
		}
		if rec != uint32(i+1) || num != uint32(10+i) || got.SequenceNumber != want[i].SequenceNumber ||
			got.Marker != want[i].Marker || !bytes.Equal(got.Payload, want[i].Payload) {
			t.Fatalf("record %d: rec %d num %d %+v", i, rec, num, got.Header)
		}
		i++
	})
	if err != nil || i != len(want) {
		t.Fatalf("decode: %v after %d records", err, i)
	}
	big := &rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, maxRTP)}
	if _, err := encodeRecord(1, 1, big); err == nil {
		t.Fatal("an oversized packet encoded")
	}
}

func TestBadFramesRefusedWhole(t *testing.T) {
	good, err := encodeRecord(1, 1, &rtp.Packet{Header: rtp.Header{Version: 2}, Payload: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(parts ...[]byte) []byte { return append([]byte{mediaVersion}, bytes.Join(parts, nil)...) }
	zeroRec := append([]byte(nil), good...)
	zeroRec[3] = 0
	long := append([]byte(nil), good...)
	long[9] = 200 // longer than what follows
	notRTP := append([]byte(nil), good...)
	notRTP[recordHeader] = 0x40
	tests := map[string][]byte{
		"empty":               {},
		"another version":     append([]byte{2}, good...),
		"truncated header":    frame(good, good[:5]),
		"recording 0":         frame(good, zeroRec),
		"length past the end": frame(good, long),
		"not RTP":             frame(good, notRTP),
	}
	for name, data := range tests {
		n := 0
		if err := decodeFrame(data, func(uint32, uint32, []byte) { n++ }); err == nil || n != 0 {
			t.Errorf("%s: err %v after %d records, want an error and none", name, err, n)
		}
	}
}

func TestTrackDescriptionChecked(t *testing.T) {
	good := wireTrack{Member: "a", ID: "a/video", Kind: "video", MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}
	if tr, err := good.recordedTrack(); err != nil || tr.Kind != webrtc.RTPCodecTypeVideo || tr.Codec.MimeType != "video/VP8" {
		t.Fatalf("good track: %+v, %v", tr, err)
	}
	tests := map[string]func(*wireTrack){
		"unknown kind":            func(w *wireTrack) { w.Kind = "data" },
		"codec of the other kind": func(w *wireTrack) { w.MimeType = "audio/opus" },
		"no member":               func(w *wireTrack) { w.Member = "" },
		"huge id":                 func(w *wireTrack) { w.ID = strings.Repeat("x", 1000) },
		"no clock rate":           func(w *wireTrack) { w.ClockRate = 0 },
		"payload type 200":        func(w *wireTrack) { w.PayloadType = 200 },
	}
	for name, mutate := range tests {
		w := good
		mutate(&w)
		if _, err := w.recordedTrack(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzMediaFrame feeds arbitrary media messages to the signal side's
// decoder: it never panics, and hands over records that tile the message
// exactly, or nothing.
func FuzzMediaFrame(f *testing.F) {
	good, _ := encodeRecord(1, 2, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 5}, Payload: []byte("vp8")})
	f.Add(append([]byte{mediaVersion}, good...))
	f.Add(append(append([]byte{mediaVersion}, good...), good[:7]...))
	f.Add([]byte{mediaVersion})
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		total := 0
		err := decodeFrame(data, func(rec, num uint32, pkt []byte) {
			if rec == 0 || num == 0 || len(pkt) < 12 || len(pkt) > maxRTP {
				t.Fatalf("record %d/%d of %d bytes handed over", rec, num, len(pkt))
			}
			var p rtp.Packet
			_ = p.Unmarshal(pkt) // may fail; the client then drops it
			total += recordHeader + len(pkt)
		})
		if err == nil && total != len(data)-1 {
			t.Fatalf("records cover %d of %d bytes", total, len(data)-1)
		}
		if err != nil && total != 0 {
			t.Fatalf("%d bytes of records handed over from a refused message", total)
		}
	})
}

// TestRecordingFloodEnds: a node that announces tracks without end (a
// node gone wrong) ends the recording instead of growing the signal
// side's queue without bound; the sink gets a bounded number of tracks,
// each ended, then Ended with the reason, and the node is told to stop.
func TestRecordingFloodEnds(t *testing.T) {
	c := &Client{url: "wss://node.test/", log: quietLog()}
	l := newClientLink(c, &endpoint{out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{})})
	sink := nodetest.NewRecordLog()
	rr, err := l.newRecording(sink)
	if err != nil {
		t.Fatal(err)
	}
	rr.confirm()
	track := &wireTrack{Member: "m", ID: "m/video", Kind: "video", MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}
	for i := range maxRecordEvents + 10 {
		l.handleRecording(message{Type: typeTrack, Rec: rr.id, Num: uint32(i + 1), Track: track})
	}
	select {
	case err := <-sink.EndedCh():
		if !errors.Is(err, errRecordFlood) {
			t.Fatalf("Ended(%v), want the flood", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Ended after a flood of tracks")
	}
	if n := len(sink.Tracks()); n == 0 || n > maxRecordedTracks {
		t.Fatalf("%d tracks announced to the sink, want 1..%d", n, maxRecordedTracks)
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
	if l.recs.get(rr.id) != nil {
		t.Fatal("the flooded recording is still on the link")
	}
	var stop message
	for len(l.ep.out) > 0 {
		if err := json.Unmarshal((<-l.ep.out).b, &stop); err != nil {
			t.Fatal(err)
		}
	}
	if stop.Type != typeStopRecord || stop.Rec != rr.id {
		t.Fatalf("last message to the node %+v, want stoprecord", stop)
	}
	c.events.Wait()
}
