package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// storedRecordingAt stores a finished recording of consultID started at
// start, with one file of content in two segments, as the recording
// service stores them, and returns the file's id.
func storedRecordingAt(t *testing.T, dir, consultID, id string, content []byte, start time.Time) string {
	t.Helper()
	return storedFileAt(t, dir, consultID, id, "webm", content, start)
}

// storedFileAt is storedRecordingAt with the file's format ("webm" or
// "matroska").
func storedFileAt(t *testing.T, dir, consultID, id, format string, content []byte, start time.Time) string {
	t.Helper()
	ctx := context.Background()
	db, keys := openData(t, dir)
	defer db.Close()
	defer keys.Close()
	fs, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	objects := objstore.New(fs, keys)
	name, err := keys.SealString("Pat Patient", []byte("recordings.consent:"+id+":g_pat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateRecording(ctx, store.Recording{ID: id, ConsultID: consultID, RequestedBy: "u_x", StartedAt: start},
		[]store.RecordingConsent{{MemberID: "g_pat", NameEnc: name, At: start}}); err != nil {
		t.Fatal(err)
	}
	file := "f_" + id
	if err := db.AddRecordingFile(ctx, store.RecordingFile{ID: file, RecordingID: id, MemberID: "g_pat", Kinds: "audio+video", Format: format}); err != nil {
		t.Fatal(err)
	}
	half := len(content) / 2
	for seq, part := range [][]byte{content[:half], content[half:]} {
		obj, err := objects.Put(ctx, fmt.Sprintf("recordings/o_%s/%06d", id, seq), bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PutRecordingSegment(ctx, store.RecordingSegment{FileID: file, Seq: seq, Object: obj.Name, KeyEnc: obj.SealedKey, Size: obj.Size}, time.Minute, start); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.EndRecording(ctx, id, start.Add(time.Minute), store.RecordingComplete, "requested", time.Minute); err != nil {
		t.Fatal(err)
	}
	return file
}

func getRange(t *testing.T, c *http.Client, u, rng string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestRecordingPlaysFromTheRecordPageUntilRetentionDeletesIt(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	admin, c, consultID := clinicianWithConsult(t, d, dir, "dr.rec")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 300<<10)
	_, _ = rand.Read(content)
	file := storedRecordingAt(t, dir, consultID, "r_old", content, time.Now().UTC().Add(-72*time.Hour))

	d = startDev(t, dir)
	filePath := "/consults/" + consultID + "/recordings/r_old/files/" + file
	fileURL := d.public + filePath
	_, page := getRange(t, c, d.public+"/consults/"+consultID+"/record", "")
	if !strings.Contains(string(page), `<video controls preload="none" playsinline src="/consults/`+consultID+`/recordings/r_old/files/`+file+`"`) {
		t.Fatalf("record page without the recording's player:\n%s", page)
	}
	resp, body := getRange(t, c, fileURL, "bytes=150000-160000")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[150000:160001]) {
		t.Fatalf("range of the recording = %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := getRange(t, admin, fileURL, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("administrator without -recording-viewer admin = %d", resp.StatusCode)
	}
	_, audit := getRange(t, admin, d.public+"/admin/audit", "")
	if !strings.Contains(string(audit), "recording.viewed") {
		t.Fatalf("audit page without recording.viewed")
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = startDev(t, dir, "-recording-retention", "48h", "-recording-viewer", "admin")
	t.Cleanup(func() { d.stop() })
	fileURL = d.public + filePath
	eventually.True(t, 10*time.Second, "the sweep at start deletes the old recording", func() bool {
		return strings.Contains(d.stderr.String(), `"msg":"recordings deleted at the end of their retention","recordings":1`)
	})
	if resp, _ := getRange(t, admin, fileURL, ""); resp.StatusCode != http.StatusGone {
		t.Fatalf("recording after retention = %d", resp.StatusCode)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "objects", "recordings"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if objs, _ := os.ReadDir(filepath.Join(dir, "objects", "recordings", e.Name())); len(objs) != 0 {
			t.Fatalf("objects left in %s: %d", e.Name(), len(objs))
		}
	}
}

func TestRecordingFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{{"-recording-retention", "10m"}, {"-recording-viewer", "patient"}} {
		s := newSettings(io.Discard)
		if err := s.load(append([]string{"-dev"}, args...), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "-")) {
			t.Errorf("%v: %v", args, err)
		}
	}
}
