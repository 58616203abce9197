package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// TestDocumentDownloadMemory prints how much resident memory concurrent
// downloads of one 10 MiB shared document add to a running signal server
// (started in this process, so the figure includes the downloading
// clients, which discard what they read). It measures and prints; it runs
// only when asked:
//
//	SIGNAL_DOCUMENT_RSS=1 go test -run TestDocumentDownloadMemory -v ./cmd/signal
func TestDocumentDownloadMemory(t *testing.T) {
	if os.Getenv("SIGNAL_DOCUMENT_RSS") == "" {
		t.Skip("a measurement: set SIGNAL_DOCUMENT_RSS=1 to run it")
	}
	const downloads, size = 40, 10 << 20
	dir := t.TempDir()
	d := startDev(t, dir)
	t.Cleanup(func() { d.stop() })
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.rss", "a long clinician passphrase")
	clinician := signInHTTP(t, d, "dr.rss", "a long clinician passphrase")
	clinician.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := postForm(t, clinician, d.public+"/consults", nil)
	consultID, ok := strings.CutPrefix(resp.Header.Get("Location"), "/consults/")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		t.Fatalf("create consult = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	docID := seedDocument(t, dir, consultID, size)
	url := d.public + "/consults/" + consultID + "/files/" + docID

	download := func() {
		resp, err := clinician.Get(url)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != 200 || n != size {
			t.Errorf("download = %d, %d bytes, %v", resp.StatusCode, n, err)
		}
	}
	download() // warm up: connections, templates, caches
	before := rss(t)
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, rss(t))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for range downloads {
		wg.Go(download)
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-sampled
	fmt.Printf("%d concurrent downloads of %d MiB: RSS before %.1f MiB, peak %.1f MiB, added %.1f MiB (%v)\n",
		downloads, size>>20, mib(before), mib(peak), mib(peak-before), took.Round(time.Millisecond))
}

func rss(t *testing.T) int64 {
	u, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return u.RSSBytes
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// seedDocument shares a PDF of size bytes in the consult by the service the
// server uses, from the same data directory, and returns its id.
func seedDocument(t *testing.T, dir, consultID string, size int) string {
	t.Helper()
	ctx := context.Background()
	db, keys := openData(t, dir)
	defer db.Close()
	defer keys.Close()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	copy(data, "%PDF-1.4\n")
	objects, err := objstore.NewFS(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	svc := &consult.Service{Store: db, Sealer: keys, Log: slog.New(slog.DiscardHandler), Now: time.Now, Objects: objstore.New(objects, keys)}
	msg, err := svc.ShareDocument(ctx, consultID, "m_rss", "Dr RSS", "scan.pdf", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return msg.File.ID
}

// openData opens the database and keyring of a development data
// directory, beside or after the server using it.
func openData(t *testing.T, dir string) (*store.DB, *keyring.Keyring) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dev-master.key"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := keyring.MasterKeyFromBase64(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(ctx, db, master)
	if err != nil {
		t.Fatal(err)
	}
	return db, keys
}
