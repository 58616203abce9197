package recording

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/store"
)

// testNode is a test double of a media node's recording: it hands the
// sink the tracks and packets a test writes, and records keyframe
// requests. Stop ends every track and then the recording, as the
// contract says.
type testNode struct {
	mu        sync.Mutex
	sink      media.RecordSink
	tracks    []media.TrackSink
	keyframes map[string]int
	stopped   bool
	onStop    func() // replaces the contract's ending when set
}

func (n *testNode) Record(_ context.Context, _ string, sink media.RecordSink) (media.Recording, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sink, n.keyframes = sink, map[string]int{}
	return n, nil
}

func (n *testNode) Keyframe(trackID string) {
	n.mu.Lock()
	n.keyframes[trackID]++
	n.mu.Unlock()
}

func (n *testNode) keyframeCount(trackID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keyframes[trackID]
}

func (n *testNode) Stop() {
	n.mu.Lock()
	n.stopped = true
	tracks, sink, onStop := n.tracks, n.sink, n.onStop
	n.mu.Unlock()
	if onStop != nil {
		onStop()
		return
	}
	for _, t := range tracks {
		t.End()
	}
	sink.Ended(nil)
}

func (n *testNode) track(member, id string, kind webrtc.RTPCodecType, mime string, clock uint32, channels uint16) media.TrackSink {
	ts := n.sink.Track(media.RecordedTrack{MemberID: member, TrackID: id, Kind: kind,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock, Channels: channels}}})
	n.mu.Lock()
	n.tracks = append(n.tracks, ts)
	n.mu.Unlock()
	return ts
}

// clock is the test's time, moved by the media it writes.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// auditTrail is a test double of the audit log.
type auditTrail struct {
	mu     sync.Mutex
	events []auditEvent
}

type auditEvent struct {
	event, consult, member string
	fields                 map[string]string
}

func (a *auditTrail) RecordSession(_ context.Context, event, consultID, memberID, _ string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, auditEvent{event, consultID, memberID, fields})
	return nil
}

func (a *auditTrail) find(event string) (auditEvent, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events {
		if e.event == event {
			return e, true
		}
	}
	return auditEvent{}, false
}

type fixture struct {
	svc     *Service
	db      *store.DB
	backend *objstore.FS
	objDir  string
	clock   *clock
	audit   *auditTrail
	consult string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	c.ns.Store(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	if err := db.CreateUser(ctx, store.User{ID: "u_doc", Username: "u_doc", Role: "clinician", PasswordHash: "!", CreatedAt: c.now()}, []byte("activation"), c.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	l := store.ConsultLink{ID: "l_1", ConsultID: "c_1", TokenHash: []byte("hash"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: c.now(), ExpiresAt: c.now().Add(time.Hour)}
	if err := db.CreateConsult(ctx, store.Consult{ID: "c_1", OwnerID: "u_doc", CreatedAt: c.now()}, l); err != nil {
		t.Fatal(err)
	}
	master, _ := keyring.NewMasterKey()
	keys, err := keyring.Open(ctx, db, master)
	if err != nil {
		t.Fatal(err)
	}
	objDir := filepath.Join(t.TempDir(), "objects")
	backend, err := objstore.NewFS(objDir)
	if err != nil {
		t.Fatal(err)
	}
	a := &auditTrail{}
	svc := &Service{Store: db, Objects: objstore.New(backend, keys).WithChunkSize(12), Sealer: keys, Audit: a,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.now}
	return &fixture{svc: svc, db: db, backend: backend, objDir: objDir, clock: c, audit: a, consult: "c_1"}
}

func (f *fixture) start(t testing.TB, node *testNode) *active {
	t.Helper()
	req := StartRequest{ConsultID: f.consult, RoomID: "room", Node: node, RequestedBy: "u_doc", Request: "q_1", Consents: []Consent{
		{MemberID: "m_doc", AccountID: "u_doc", Name: "Dr Ada Clinician", At: f.clock.now()},
		{MemberID: "m_pat", Name: "Pat Patient", At: f.clock.now()},
	}}
	act, err := f.svc.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return act.(*active)
}

// member is one publishing member of the test double's room.
type member struct {
	audio, video media.TrackSink
	frames       []mediatest.Frame
	payloader    rtp.Payloader
	seqA, seqV   uint16
	next         int
	at           time.Duration // media written so far
}

func (f *fixture) join(node *testNode, id string, frames []mediatest.Frame) *member {
	return f.joinWith(node, id, webrtc.MimeTypeVP8, frames)
}

// joinWith adds a member whose video (VP8 or H.264, Annex B frames) is
// frames.
func (f *fixture) joinWith(node *testNode, id, mime string, frames []mediatest.Frame) *member {
	m := &member{frames: frames, seqA: 100, seqV: 60000, payloader: &codecs.VP8Payloader{}}
	if mime == webrtc.MimeTypeH264 {
		m.payloader = &codecs.H264Payloader{}
	}
	m.audio = node.track(id, id+"-audio", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 48000, 2)
	if frames != nil {
		m.video = node.track(id, id+"-video", webrtc.RTPCodecTypeVideo, mime, 90000, 0)
	}
	return m
}

// play writes d of media of every member, 20 ms at a time, moving the
// clock, and waits now and then for the recording to keep up (a real
// node drops what the recording cannot take; this test wants it all).
func (f *fixture) play(t testing.TB, a *active, d time.Duration, members ...*member) {
	t.Helper()
	for step := time.Duration(0); step < d; step += 20 * time.Millisecond {
		f.clock.advance(20 * time.Millisecond)
		for _, m := range members {
			m.tick()
		}
		if len(a.packets) > packetQueue/2 {
			eventually.True(t, 10*time.Second, "the recording takes its packets", func() bool { return len(a.packets) < packetQueue/4 })
		}
	}
}

// tick writes one 20 ms Opus packet and the video frames due by then
// (30 per second).
func (m *member) tick() {
	at := m.at
	m.at += 20 * time.Millisecond
	n := at / (20 * time.Millisecond)
	if m.audio != nil {
		m.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: m.seqA, Timestamp: uint32(n) * 960, Marker: n == 0}, Payload: mediatest.OpusSilence})
		m.seqA++
	}
	for m.video != nil && m.next < len(m.frames) && time.Duration(m.next)*time.Second/30 <= at {
		ts := uint32(m.next) * 3000
		payloads := m.payloader.Payload(1100, m.frames[m.next].Data)
		for i, p := range payloads {
			m.video.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: m.seqV, Timestamp: ts, Marker: i == len(payloads)-1}, Payload: p})
			m.seqV++
		}
		m.next++
	}
}
