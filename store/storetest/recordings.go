package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunRecordings runs the recordings suite.
func RunRecordings(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"RecordingKeepsFilesSegmentsAndConsents", recordingRoundTrip},
		{"FirstSegmentIsReplacedWhenTheFileIsFinished", recordingSegmentReplaced},
		{"OnlyARunningRecordingEnds", recordingEndsOnce},
		{"RetentionSkipsHeldRunningAndRecentRecordings", recordingRetentionSelects},
		{"ExpiredRecordingKeepsItsRecordWithoutKeys", recordingTombstone},
	})
}

// startRecording stores recording id of consult c at start with one file
// f_<id> of two segments.
func startRecording(t *testing.T, db *store.DB, c, id string, start time.Time) {
	t.Helper()
	ctx := context.Background()
	r := store.Recording{ID: id, ConsultID: c, RequestedBy: "u_doc", StartedAt: start}
	consents := []store.RecordingConsent{
		{MemberID: "m_doc", AccountID: "u_doc", NameEnc: []byte("sealed doc"), At: start.Add(-time.Second)},
		{MemberID: "g_1", NameEnc: []byte("sealed guest"), At: start.Add(-2 * time.Second)},
	}
	if err := db.CreateRecording(ctx, r, consents); err != nil {
		t.Fatal(err)
	}
	f := store.RecordingFile{ID: "f_" + id, RecordingID: id, MemberID: "g_1", Kinds: "audio+video", Offset: 1500 * time.Millisecond}
	if err := db.AddRecordingFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	for seq, size := range []int64{300, 5000} {
		s := store.RecordingSegment{FileID: f.ID, Seq: seq, Object: "recordings/o_" + id + "/" + string(rune('0'+seq)), KeyEnc: []byte("key"), Size: size}
		if err := db.PutRecordingSegment(ctx, s, time.Duration(seq)*3*time.Second, start.Add(time.Duration(seq)*3*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func recordingRoundTrip(t *testing.T, db *store.DB) {
	ctx := context.Background()
	c := newConsult(t, db)
	startRecording(t, db, c, "r_1", docTime)
	r, err := db.RecordingByID(ctx, c, "r_1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RecordingRunning || r.Size != 5300 || !r.StartedAt.Equal(docTime) || !r.UpdatedAt.Equal(docTime.Add(3*time.Second)) || !r.EndedAt.IsZero() {
		t.Fatalf("recording = %+v", r)
	}
	if _, err := db.RecordingByID(ctx, "c_other", "r_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("recording of another consult = %v, want ErrNotFound", err)
	}
	files, err := db.RecordingFiles(ctx, "r_1")
	if err != nil || len(files) != 1 {
		t.Fatalf("files = %+v, %v", files, err)
	}
	if f := files[0]; f.Size != 5300 || f.Duration != 3*time.Second || f.Offset != 1500*time.Millisecond || f.Complete || f.Kinds != "audio+video" || f.Format != "webm" {
		t.Fatalf("file = %+v", f)
	}
	consents, err := db.RecordingConsents(ctx, "r_1")
	if err != nil || len(consents) != 2 || consents[0].MemberID != "g_1" || consents[0].AccountID != "" || consents[1].AccountID != "u_doc" ||
		string(consents[1].NameEnc) != "sealed doc" || !consents[0].At.Equal(docTime.Add(-2*time.Second)) {
		t.Fatalf("consents = %+v, %v", consents, err)
	}
	list, err := db.RecordingsByConsult(ctx, c)
	if err != nil || len(list) != 1 || list[0].ID != "r_1" {
		t.Fatalf("RecordingsByConsult = %+v, %v", list, err)
	}
}

func recordingSegmentReplaced(t *testing.T, db *store.DB) {
	ctx := context.Background()
	c := newConsult(t, db)
	startRecording(t, db, c, "r_1", docTime)
	s := store.RecordingSegment{FileID: "f_r_1", Seq: 0, Object: "recordings/o_r_1/0", KeyEnc: []byte("new key"), Size: 300}
	if err := db.PutRecordingSegment(ctx, s, 9*time.Second, docTime.Add(9*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRecordingFile(ctx, "f_r_1", 9*time.Second); err != nil {
		t.Fatal(err)
	}
	segs, err := db.RecordingSegments(ctx, "f_r_1")
	if err != nil || len(segs) != 2 || string(segs[0].KeyEnc) != "new key" || segs[1].Seq != 1 {
		t.Fatalf("segments = %+v, %v", segs, err)
	}
	files, _ := db.RecordingFiles(ctx, "r_1")
	if len(files) != 1 || !files[0].Complete || files[0].Size != 5300 || files[0].Duration != 9*time.Second {
		t.Fatalf("files = %+v", files)
	}
}

func recordingEndsOnce(t *testing.T, db *store.DB) {
	ctx := context.Background()
	c := newConsult(t, db)
	startRecording(t, db, c, "r_1", docTime)
	end := docTime.Add(time.Minute)
	if ok, err := db.EndRecording(ctx, "r_1", end, store.RecordingPartial, "node-failed", 59*time.Second); !ok || err != nil {
		t.Fatalf("EndRecording = %v, %v", ok, err)
	}
	if ok, err := db.EndRecording(ctx, "r_1", end, store.RecordingComplete, "requested", time.Minute); ok || err != nil {
		t.Fatalf("second EndRecording = %v, %v; want false", ok, err)
	}
	r, _ := db.RecordingByID(ctx, c, "r_1")
	if r.State != store.RecordingPartial || r.StopReason != "node-failed" || !r.EndedAt.Equal(end) || r.Duration != 59*time.Second {
		t.Fatalf("recording = %+v", r)
	}
}

func expireRecordingIDs(t *testing.T, db *store.DB, cutoff time.Time) []string {
	t.Helper()
	rs, err := db.RecordingsToExpire(context.Background(), cutoff, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func recordingRetentionSelects(t *testing.T, db *store.DB) {
	ctx := context.Background()
	open := newConsult(t, db)
	held := heldConsult(t, db)
	old := docTime.Add(-48 * time.Hour)
	startRecording(t, db, open, "r_old", old)
	startRecording(t, db, open, "r_running", old.Add(time.Minute)) // still storing segments
	startRecording(t, db, open, "r_new", docTime.Add(-time.Hour))
	startRecording(t, db, held, "r_held", old)
	for _, id := range []string{"r_old", "r_new", "r_held"} {
		if _, err := db.EndRecording(ctx, id, old.Add(time.Hour), store.RecordingComplete, "requested", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	s := store.RecordingSegment{FileID: "f_r_running", Seq: 2, Object: "recordings/o_run/2", KeyEnc: []byte("k"), Size: 1}
	if err := db.PutRecordingSegment(ctx, s, time.Hour, docTime); err != nil {
		t.Fatal(err)
	}
	cutoff := docTime.Add(-24 * time.Hour)
	if got := expireIDs(t, db, cutoff); len(got) != 0 {
		t.Fatalf("documents to expire = %v", got)
	}
	if got := expireRecordingIDs(t, db, cutoff); !slices.Equal(got, []string{"r_old"}) {
		t.Fatalf("to expire = %v, want [r_old]", got)
	}
	// A running recording whose segments stopped coming long ago expires.
	if got := expireRecordingIDs(t, db, docTime.Add(time.Minute)); !slices.Equal(got, []string{"r_old", "r_running", "r_new"}) {
		t.Fatalf("to expire later = %v", got)
	}
	if hold, err := db.LegalHold(ctx, held); !hold || err != nil {
		t.Fatalf("LegalHold = %v, %v", hold, err)
	}
	if _, err := db.LegalHold(ctx, "c_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LegalHold of no consult = %v", err)
	}
}

func recordingTombstone(t *testing.T, db *store.DB) {
	ctx := context.Background()
	c := newConsult(t, db)
	startRecording(t, db, c, "r_1", docTime)
	if ok, err := db.MarkRecordingDeleted(ctx, "r_1", docTime); ok || err != nil {
		t.Fatalf("MarkRecordingDeleted before its keys = %v, %v", ok, err)
	}
	if err := db.DestroyRecordingKeys(ctx, "r_1", docTime); err != nil {
		t.Fatal(err)
	}
	segs, _ := db.RecordingSegments(ctx, "f_r_1")
	for _, s := range segs {
		if s.KeyEnc != nil {
			t.Fatalf("segment %d keeps its key", s.Seq)
		}
	}
	objs, err := db.RecordingObjects(ctx, "r_1")
	if err != nil || len(objs) != 2 {
		t.Fatalf("objects = %v, %v", objs, err)
	}
	// Still listed until its objects are deleted, whatever a later hold says.
	if _, err := db.SetLegalHold(ctx, c, true); err != nil {
		t.Fatal(err)
	}
	if got := expireRecordingIDs(t, db, docTime.Add(-time.Hour)); !slices.Equal(got, []string{"r_1"}) {
		t.Fatalf("to expire = %v", got)
	}
	if ok, err := db.MarkRecordingDeleted(ctx, "r_1", docTime.Add(time.Second)); !ok || err != nil {
		t.Fatalf("MarkRecordingDeleted = %v, %v", ok, err)
	}
	r, _ := db.RecordingByID(ctx, c, "r_1")
	if r.State != store.RecordingPartial || !r.ExpiredAt.Equal(docTime) || !r.DeletedAt.Equal(docTime.Add(time.Second)) {
		t.Fatalf("tombstone = %+v", r)
	}
	if objs, _ := db.RecordingObjects(ctx, "r_1"); len(objs) != 0 {
		t.Fatalf("objects after deletion = %v", objs)
	}
	if files, _ := db.RecordingFiles(ctx, "r_1"); len(files) != 1 {
		t.Fatalf("files after deletion = %+v", files)
	}
	if got := expireRecordingIDs(t, db, docTime.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("to expire after deletion = %v", got)
	}
}
