package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/store"
)

func TestSweptDocumentDownloadsAsGoneAndHeldOneStays(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	admin, c, consultID := clinicianWithConsult(t, d, dir, "dr.keep")
	heldID := newConsult(t, d, c)
	resp, body := postForm(t, admin, d.public+"/admin/legal-hold", url.Values{"consult": {heldID}, "hold": {"set"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "consult.legal_hold.set") {
		t.Fatalf("set legal hold = %d, audit page without the entry:\n%s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		name   string
		client *http.Client
		form   url.Values
		status int
	}{
		{"by a clinician", c, url.Values{"consult": {consultID}, "hold": {"set"}}, 403},
		{"of an unknown consult", admin, url.Values{"consult": {"c_missing"}, "hold": {"set"}}, 404},
		{"without a choice", admin, url.Values{"consult": {consultID}, "hold": {"maybe"}}, 422},
	} {
		if resp, _ := postForm(t, tt.client, d.public+"/admin/legal-hold", tt.form); resp.StatusCode != tt.status {
			t.Fatalf("legal hold %s = %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-72 * time.Hour)
	pdf := append([]byte("%PDF-1.4\n"), make([]byte, 1000)...)
	legacyDocumentAt(t, dir, consultID, "d_old", pdf, old)
	legacyDocumentAt(t, dir, heldID, "d_held", pdf, old)

	d = startDev(t, dir, "-document-retention", "48h")
	t.Cleanup(func() { d.stop() })
	eventually.True(t, 10*time.Second, "the sweep at start deletes the old document", func() bool {
		return strings.Contains(d.stderr.String(), `"msg":"documents deleted at the end of their retention","documents":1`)
	})
	resp, err := c.Get(d.public + "/consults/" + consultID + "/files/d_old")
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(gone), "deleted at the end of its retention period") {
		t.Fatalf("download of a swept document = %d %q", resp.StatusCode, gone)
	}
	resp, err = c.Get(d.public + "/consults/" + heldID + "/files/d_held")
	if err != nil {
		t.Fatal(err)
	}
	held, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(held) != string(pdf) {
		t.Fatalf("download of a held consult's document = %d, %d bytes", resp.StatusCode, len(held))
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
	if err != nil || len(entries) != 1 { // the held consult's
		t.Fatalf("%d objects in the store, want only the held one, %v", len(entries), err)
	}
}
