package consult

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// recordingKeyFirst deletes objects from the real backend and records,
// at each delete, whether a segment of the recording still had its key.
type recordingKeyFirst struct {
	f       retentionFixture
	objects map[string]string // object -> recording's file
	keyLeft []string
}

func (k *recordingKeyFirst) Delete(ctx context.Context, name string) error {
	if file, ok := k.objects[name]; ok {
		segs, err := k.f.db.RecordingSegments(ctx, file)
		for _, s := range segs {
			if err != nil || s.KeyEnc != nil {
				k.keyLeft = append(k.keyLeft, name)
			}
		}
	}
	return k.f.backend.Delete(ctx, name)
}

// record stores a finished recording of consultID with one file of two
// segments, at the fixture's current time.
func (f retentionFixture) record(t *testing.T, k *recordingKeyFirst, consultID, id string) []string {
	t.Helper()
	ctx := context.Background()
	if err := f.db.CreateRecording(ctx, store.Recording{ID: id, ConsultID: consultID, RequestedBy: "u_doc", StartedAt: *f.now},
		[]store.RecordingConsent{{MemberID: "g_pat", NameEnc: []byte("sealed"), At: *f.now}}); err != nil {
		t.Fatal(err)
	}
	file := "f_" + id
	if err := f.db.AddRecordingFile(ctx, store.RecordingFile{ID: file, RecordingID: id, MemberID: "g_pat", Kinds: "audio"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for seq := range 2 {
		name := "recordings/o_" + id + "/00000" + string(rune('0'+seq))
		obj, err := f.s.Objects.Put(ctx, name, strings.NewReader("webm bytes"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.db.PutRecordingSegment(ctx, store.RecordingSegment{FileID: file, Seq: seq, Object: obj.Name, KeyEnc: obj.SealedKey, Size: obj.Size}, time.Second, *f.now); err != nil {
			t.Fatal(err)
		}
		k.objects[name] = file
		names = append(names, name)
	}
	if _, err := f.db.EndRecording(ctx, id, *f.now, store.RecordingComplete, "requested", time.Second); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSweepExpiresRecordingsKeyFirstAndAudits(t *testing.T) {
	ctx := context.Background()
	f := newRetentionFixture(t)
	k := &recordingKeyFirst{f: f, objects: map[string]string{}}
	f.sweeper.Objects = k
	f.sweeper.Recordings = f.db
	f.sweeper.Retention = 0 // documents kept: only recordings expire
	f.sweeper.RecordingRetention = 7 * 24 * time.Hour
	open, _ := f.s.Create(ctx, "u_doc", "", false)
	held, _ := f.s.Create(ctx, "u_doc", "", false)
	if _, err := f.db.SetLegalHold(ctx, held.ID, true); err != nil {
		t.Fatal(err)
	}
	doc := f.share(t, open.ID)
	old := f.record(t, k, open.ID, "r_old")
	oldHeld := f.record(t, k, held.ID, "r_held")
	*f.now = f.now.Add(5 * 24 * time.Hour)
	recent := f.record(t, k, open.ID, "r_recent")
	*f.now = f.now.Add(5 * 24 * time.Hour)

	if n, err := f.sweeper.Sweep(ctx); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if len(k.keyLeft) != 0 {
		t.Fatalf("objects deleted while their keys were stored: %v", k.keyLeft)
	}
	for _, o := range old {
		if f.objectExists(t, o) {
			t.Fatalf("expired object %s still stored", o)
		}
	}
	for _, o := range slices.Concat(oldHeld, recent) {
		if !f.objectExists(t, o) {
			t.Fatalf("object %s deleted too early or under legal hold", o)
		}
	}
	r, err := f.db.RecordingByID(ctx, open.ID, "r_old")
	if err != nil || r.DeletedAt.IsZero() || r.ExpiredAt.IsZero() {
		t.Fatalf("expired recording = %+v, %v; want a tombstone", r, err)
	}
	want := "recording.expired " + open.ID + " "
	if len(f.audit.entries) != 1 || f.audit.entries[0] != want {
		t.Fatalf("audit = %q, want [%q]", f.audit.entries, want)
	}
	readDocument(t, f.s, open.ID, doc.ID)
	if n, err := f.sweeper.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}
}
