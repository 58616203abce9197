package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/store"
)

// readFile opens a recorded file and returns all of it.
func (f *fixture) readFile(t *testing.T, rec, file string) []byte {
	t.Helper()
	o, err := f.svc.OpenFile(context.Background(), f.consult, rec, file)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Content.Close()
	b, err := io.ReadAll(o.Content)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != o.Size {
		t.Fatalf("read %d bytes of %d", len(b), o.Size)
	}
	return b
}

func (f *fixture) probe(t *testing.T, rec, file string) mediatest.Probe {
	t.Helper()
	path := filepath.Join(t.TempDir(), file+".webm")
	if err := os.WriteFile(path, f.readFile(t, rec, file), 0o600); err != nil {
		t.Fatal(err)
	}
	return mediatest.ProbeFile(t, path)
}

func near(got, want, tolerance time.Duration) bool {
	return got >= want-tolerance && got <= want+tolerance
}

func (f *fixture) only(t *testing.T) Summary {
	t.Helper()
	list, err := f.svc.List(context.Background(), f.consult)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	return list[0]
}

func TestRecordingWritesOneFilePerMember(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	doc := f.join(node, "m_doc", mediatest.Video(t, "vp8", 9*time.Second, 30, 90))
	pat := f.join(node, "m_pat", nil)
	f.play(t, a, 8*time.Second, doc, pat)
	if _, err := f.svc.Start(context.Background(), StartRequest{ConsultID: f.consult, RoomID: "room", Node: &testNode{}, RequestedBy: "u_doc",
		Consents: []Consent{{MemberID: "m_doc"}}}); !errors.Is(err, ErrRecording) {
		t.Fatalf("second recording of the consult: %v", err)
	}
	if f.svc.Recording(f.consult) != Active(a) {
		t.Fatal("Recording does not return the running recording")
	}
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	if f.svc.Recording(f.consult) != nil {
		t.Fatal("a stopped recording is still running")
	}
	if n := node.keyframeCount("m_doc-video"); n < 1 {
		t.Errorf("%d keyframe requests for the video", n)
	}
	started, ok := f.audit.find(EventStarted)
	if !ok || started.fields["recording"] != a.ID() || started.member != "u_doc" || started.fields["members"] != "m_doc,m_pat" || started.fields["request"] != "q_1" {
		t.Fatalf("recording.started = %+v", started)
	}
	stopped, ok := f.audit.find(EventStopped)
	if !ok || stopped.fields["reason"] != "requested" || stopped.fields["state"] != store.RecordingComplete {
		t.Fatalf("recording.stopped = %+v", stopped)
	}
	sum := f.only(t)
	if sum.State != store.RecordingComplete || len(sum.Files) != 2 || len(sum.Consents) != 2 || sum.Duration != 8*time.Second {
		t.Fatalf("summary = %+v", sum)
	}
	names := map[string]string{}
	for _, c := range sum.Consents {
		names[c.MemberID] = c.Name
	}
	if names["m_doc"] != "Dr Ada Clinician" || names["m_pat"] != "Pat Patient" {
		t.Fatalf("consents = %+v", sum.Consents)
	}
	var total int64
	for _, file := range sum.Files {
		total += file.Size
		p := f.probe(t, sum.ID, file.ID)
		_, hasAudio := p.Stream("audio")
		v, hasVideo := p.Stream("video")
		if !file.Complete || !hasAudio || hasVideo != (file.MemberID == "m_doc") || file.Kinds != map[string]string{"m_doc": "audio+video", "m_pat": "audio"}[file.MemberID] {
			t.Errorf("file of %s (%s, complete %v): streams %+v", file.MemberID, file.Kinds, file.Complete, p.Streams)
		}
		if hasVideo && (v.CodecName != "vp8" || v.Width != 320) {
			t.Errorf("video stream %+v", v)
		}
		if !near(p.Duration(), 8*time.Second, 300*time.Millisecond) || !near(file.Duration, 8*time.Second, 300*time.Millisecond) {
			t.Errorf("file of %s lasts %v (records say %v), want 8s", file.MemberID, p.Duration(), file.Duration)
		}
		if strings.Contains(file.Name, "Pat") != (file.MemberID == "m_pat") {
			t.Errorf("file of %s named %q", file.MemberID, file.Name)
		}
	}
	if total != sum.Size {
		t.Errorf("files hold %d bytes, the recording says %d", total, sum.Size)
	}
	// Object names are random: nothing of the consult or its members.
	objs, err := f.backend.List(context.Background(), "")
	if err != nil || len(objs) < 6 {
		t.Fatalf("objects = %v, %v", objs, err)
	}
	for _, o := range objs {
		if !strings.HasPrefix(o.Name, "recordings/o_") || strings.Contains(o.Name, "m_") || strings.Contains(o.Name, "c_1") {
			t.Errorf("object %q", o.Name)
		}
	}
}

func TestNodeFailureLeavesAPartialRecording(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	doc := f.join(node, "m_doc", mediatest.Video(t, "vp8", 5*time.Second, 30, 60))
	f.play(t, a, 4*time.Second, doc)
	node.sink.Ended(errors.New("media node lost"))
	<-a.Done()
	stopped, _ := f.audit.find(EventStopped)
	if stopped.fields["reason"] != "node-failed" || stopped.fields["state"] != store.RecordingPartial {
		t.Fatalf("recording.stopped = %+v", stopped)
	}
	sum := f.only(t)
	if sum.State != store.RecordingPartial || sum.StopReason != "node-failed" || len(sum.Files) != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	p := f.probe(t, sum.ID, sum.Files[0].ID)
	if _, ok := p.Stream("video"); !ok || !near(p.Duration(), 4*time.Second, 300*time.Millisecond) {
		t.Fatalf("partial file: %+v, %v", p.Streams, p.Duration())
	}
}

func TestStopFinishesWhenTheNodeNeverEnds(t *testing.T) {
	f := newFixture(t)
	f.svc.StopGrace = 50 * time.Millisecond
	node := &testNode{onStop: func() {}}
	a := f.start(t, node)
	pat := f.join(node, "m_pat", nil)
	f.play(t, a, 3*time.Second, pat)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Stop(ctx, "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	if sum.State != store.RecordingPartial || sum.StopReason != "requested" || len(sum.Files) != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	f.probe(t, sum.ID, sum.Files[0].ID)
}

func TestLossAsksForAKeyframeAndSkipsToIt(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	frames := mediatest.Video(t, "vp8", 7*time.Second, 30, 60)
	doc := f.join(node, "m_doc", frames)
	f.play(t, a, 2500*time.Millisecond, doc) // frames 0 to 74
	before := node.keyframeCount("m_doc-video")
	doc.seqV += 3                    // three packets lost in the network before frame 75
	f.play(t, a, 4*time.Second, doc) // frames 75 to 194
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	if after := node.keyframeCount("m_doc-video"); after <= before {
		t.Fatalf("keyframe requests %d before the loss, %d after", before, after)
	}
	sum := f.only(t)
	// Nothing between the loss and the next keyframe (frame 120) was
	// written: 195 frames sent, 45 skipped.
	p := f.probe(t, sum.ID, sum.Files[0].ID)
	if v, _ := p.Stream("video"); v.Frames != "150" {
		t.Fatalf("video %+v, want 150 frames", v)
	}
}

func TestTamperedSegmentIsRefused(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	pat := f.join(node, "m_pat", nil)
	f.play(t, a, 5*time.Second, pat)
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	segs, err := f.db.RecordingSegments(context.Background(), sum.Files[0].ID)
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %+v, %v", segs, err)
	}
	path := filepath.Join(f.objDir, filepath.FromSlash(segs[1].Object))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := f.svc.OpenFile(context.Background(), f.consult, sum.ID, sum.Files[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Content.Close()
	if _, err := io.Copy(io.Discard, o.Content); !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("reading a tampered file: %v, want ErrCorrupt", err)
	}
}

func TestRangesReadTheSameBytes(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	doc := f.join(node, "m_doc", mediatest.Video(t, "vp8", 6*time.Second, 30, 60))
	f.play(t, a, 5*time.Second, doc)
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	whole := f.readFile(t, sum.ID, sum.Files[0].ID)
	o, err := f.svc.OpenFile(context.Background(), f.consult, sum.ID, sum.Files[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Content.Close()
	n := int64(len(whole))
	for _, r := range [][2]int64{{n - 10, 10}, {0, 100}, {n / 2, n / 3}, {4000, 5000}, {n - 1, 1}, {1, n - 1}} {
		if _, err := o.Content.Seek(r[0], io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, r[1])
		if _, err := io.ReadFull(o.Content, got); err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		if !bytes.Equal(got, whole[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v differs", r)
		}
	}
	if _, err := o.Content.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read at the end: %v", err)
	}
}

func TestDeleteDestroysKeysThenObjects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	pat := f.join(node, "m_pat", nil)
	f.play(t, a, 3*time.Second, pat)
	if err := f.svc.Delete(ctx, f.consult, a.ID(), "u_doc"); !errors.Is(err, ErrRunning) {
		t.Fatalf("deleting a running recording: %v", err)
	}
	if err := a.Stop(ctx, "requested"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.SetLegalHold(ctx, f.consult, true); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, f.consult, a.ID(), "u_doc"); !errors.Is(err, ErrLegalHold) {
		t.Fatalf("deleting under legal hold: %v", err)
	}
	if _, err := f.db.SetLegalHold(ctx, f.consult, false); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, f.consult, a.ID(), "u_doc"); err != nil {
		t.Fatal(err)
	}
	if e, ok := f.audit.find(EventDeleted); !ok || e.member != "u_doc" || e.fields["recording"] != a.ID() {
		t.Fatalf("recording.deleted = %+v", e)
	}
	if objs, _ := f.backend.List(ctx, "recordings/"); len(objs) != 0 {
		t.Fatalf("objects left: %v", objs)
	}
	sum := f.only(t)
	if !sum.Deleted || len(sum.Files) != 1 || len(sum.Consents) != 2 {
		t.Fatalf("summary after deletion = %+v", sum)
	}
	if _, err := f.svc.OpenFile(ctx, f.consult, sum.ID, sum.Files[0].ID); !errors.Is(err, ErrDeleted) {
		t.Fatalf("opening a deleted recording: %v", err)
	}
}

// TestStoredPartOfARunningRecordingPlays is what a crash of the process
// leaves: the segments stored so far play (at most the open cluster, a
// few seconds, is lost), and the list shows the recording as partial
// once it has been silent for a while.
func TestStoredPartOfARunningRecordingPlays(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	doc := f.join(node, "m_doc", mediatest.Video(t, "vp8", 9*time.Second, 30, 60))
	f.play(t, a, 8*time.Second, doc)
	var file string
	eventually.True(t, 20*time.Second, "6 s of the file stored", func() bool {
		sum := f.only(t)
		if len(sum.Files) != 1 {
			return false
		}
		file = sum.Files[0].ID
		return sum.Files[0].Duration >= 6*time.Second
	})
	p := f.probe(t, a.ID(), file)
	v, _ := p.Stream("video")
	if _, ok := p.Stream("audio"); !ok || v.CodecName != "vp8" {
		t.Fatalf("stored part: %+v", p.Streams)
	}
	if n, _ := strconv.Atoi(v.Frames); n < 6*30 {
		t.Fatalf("stored part holds %d frames, want at least 6 s", n)
	}
	f.clock.advance(2 * time.Minute)
	if sum := f.only(t); sum.State != store.RecordingPartial || sum.StopReason != "interrupted" {
		t.Fatalf("silent running recording listed as %q (%q)", sum.State, sum.StopReason)
	}
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
}

func TestH264IsRecordedAsMatroska(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	frames := mediatest.Video(t, "h264", 6*time.Second, 30, 60)
	phone := f.joinWith(node, "m_phone", webrtc.MimeTypeH264, frames)
	f.play(t, a, 5*time.Second, phone)
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	o, err := f.svc.OpenFile(context.Background(), f.consult, sum.ID, sum.Files[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	o.Content.Close()
	if o.Type != "video/x-matroska" || !strings.HasSuffix(o.Name, ".mkv") {
		t.Fatalf("H.264 file served as %q, %q", o.Type, o.Name)
	}
	p := f.probe(t, sum.ID, sum.Files[0].ID)
	v, _ := p.Stream("video")
	if _, ok := p.Stream("audio"); !ok || v.CodecName != "h264" || v.Width != 320 || v.Height != 240 || v.Frames != "150" {
		t.Fatalf("streams %+v", p.Streams)
	}
	if !near(p.Duration(), 5*time.Second, 300*time.Millisecond) {
		t.Fatalf("duration %v", p.Duration())
	}
}

// failingObjects is a test double of the object store that fails every
// Put after the first ok ones, as a storage outage would.
type failingObjects struct {
	Objects
	mu sync.Mutex
	ok int
}

func (o *failingObjects) Put(ctx context.Context, name string, r io.Reader) (objstore.Object, error) {
	o.mu.Lock()
	fail := o.ok <= 0
	o.ok--
	o.mu.Unlock()
	if fail {
		return objstore.Object{}, errors.New("storage unavailable")
	}
	return o.Objects.Put(ctx, name, r)
}

func TestStorageOutageLeavesAPartialRecordingThatPlays(t *testing.T) {
	f := newFixture(t)
	f.svc.Objects = &failingObjects{Objects: f.svc.Objects, ok: 3} // the header and two clusters
	node := &testNode{}
	a := f.start(t, node)
	pat := f.join(node, "m_pat", nil)
	f.play(t, a, 10*time.Second, pat)
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	if sum.State != store.RecordingPartial || len(sum.Files) != 1 || sum.Files[0].Complete {
		t.Fatalf("summary = %+v", sum)
	}
	if stopped, _ := f.audit.find(EventStopped); stopped.fields["state"] != store.RecordingPartial {
		t.Fatalf("recording.stopped = %+v", stopped)
	}
	p := f.probe(t, sum.ID, sum.Files[0].ID)
	if a, ok := p.Stream("audio"); !ok || a.Frames == "0" {
		t.Fatalf("stored part: %+v", p.Streams)
	}
}

// TestAudioAnnouncedAfterTheFirstKeyframeJoinsTheVideoFile: the node
// announces a member's tracks one at a time, so the first keyframe can
// come before the member's audio is known. Both still make one file.
func TestAudioAnnouncedAfterTheFirstKeyframeJoinsTheVideoFile(t *testing.T) {
	f := newFixture(t)
	node := &testNode{}
	a := f.start(t, node)
	m := &member{frames: mediatest.Video(t, "vp8", 7*time.Second, 30, 90), seqA: 100, seqV: 60000, payloader: &codecs.VP8Payloader{}}
	m.video = node.track("m_doc", "m_doc-video", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 90000, 0)
	f.play(t, a, 300*time.Millisecond, m)
	m.audio = node.track("m_doc", "m_doc-audio", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 48000, 2)
	f.play(t, a, 6*time.Second, m)
	if err := a.Stop(context.Background(), "requested"); err != nil {
		t.Fatal(err)
	}
	sum := f.only(t)
	if len(sum.Files) != 1 || sum.Files[0].Kinds != "audio+video" {
		t.Fatalf("files = %+v", sum.Files)
	}
	p := f.probe(t, sum.ID, sum.Files[0].ID)
	if _, ok := p.Stream("audio"); !ok || !near(p.Duration(), 6300*time.Millisecond, 400*time.Millisecond) {
		t.Fatalf("file: %+v, %v", p.Streams, p.Duration())
	}
}
