package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/store"
)

func TestSweptDocumentDownloadsAsGone(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.keep", "a long clinician passphrase")
	c := signInHTTP(t, d, "dr.keep", "a long clinician passphrase")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := postForm(t, c, d.public+"/consults", nil)
	consultID := strings.TrimPrefix(resp.Header.Get("Location"), "/consults/")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-72 * time.Hour)
	legacyDocumentAt(t, dir, consultID, "d_old", append([]byte("%PDF-1.4\n"), make([]byte, 1000)...), old)

	d = startDev(t, dir, "-document-retention", "48h")
	t.Cleanup(func() { d.stop() })
	eventually.True(t, 10*time.Second, "the sweep at start deletes the old document", func() bool {
		return strings.Contains(d.stderr.String(), `"msg":"documents deleted at the end of their retention","documents":1`)
	})
	resp, err := c.Get(d.public + "/consults/" + consultID + "/files/d_old")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "deleted at the end of its retention period") {
		t.Fatalf("download of a swept document = %d %q", resp.StatusCode, body)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row, err := db.DocumentByID(context.Background(), consultID, "d_old")
	if err != nil || row.DeletedAt.IsZero() || row.KeyEnc != nil {
		t.Fatalf("swept row = %+v, %v", row, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "objects", "documents"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("%d objects left in the store, %v", len(entries), err)
	}
}
