package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/store"
)

// joinCall connects the clinician's WebSocket to the consult, which admits
// the host, and returns once the server welcomed it.
func joinCall(t *testing.T, d *devServer, c *http.Client, consultID string) {
	t.Helper()
	u := "wss" + strings.TrimPrefix(d.public, "https") + "/ws/consults/" + consultID
	req, _ := http.NewRequest("GET", d.public, nil)
	hdr := http.Header{"Origin": {d.public}}
	for _, ck := range c.Jar.Cookies(req.URL) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	dialer := websocket.Dialer{TLSClientConfig: d.client.Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 10 * time.Second}
	ws, _, err := dialer.Dial(u, hdr)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The host is admitted as it joins, before the welcome arrives.
	var m struct{ Type string }
	if err := ws.ReadJSON(&m); err != nil || m.Type != "welcome" {
		t.Fatalf("welcome = %+v, %v", m, err)
	}
}

// upload shares content as a multipart file and returns status, error
// message and Retry-After.
func upload(t *testing.T, d *devServer, c *http.Client, consultID string, content []byte) (int, string, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "scan.pdf")
	_, _ = fw.Write(content)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", d.public+"/consults/"+consultID+"/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", d.public)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct{ ID, Error string }
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	if resp.StatusCode == http.StatusCreated {
		return resp.StatusCode, reply.ID, ""
	}
	return resp.StatusCode, reply.Error, resp.Header.Get("Retry-After")
}

// clinicianWithConsult creates the first administrator and a clinician
// named username on d, and returns the administrator's and the clinician's
// clients (the clinician's follows no redirect) and a consult the clinician
// started.
func clinicianWithConsult(t *testing.T, d *devServer, dir, username string) (admin, c *http.Client, consultID string) {
	t.Helper()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin = signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, username, "a long clinician passphrase")
	c = signInHTTP(t, d, username, "a long clinician passphrase")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return admin, c, newConsult(t, d, c)
}

// newConsult starts a consult as clinician c and returns its id.
func newConsult(t *testing.T, d *devServer, c *http.Client) string {
	t.Helper()
	resp, _ := postForm(t, c, d.public+"/consults", nil)
	return strings.TrimPrefix(resp.Header.Get("Location"), "/consults/")
}

func TestDocumentUploadLimitsAndRangedDownload(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, "-document-max-files", "3", "-document-uploads-per-minute", "5")
	t.Cleanup(func() { d.stop() })
	_, c, consultID := clinicianWithConsult(t, d, dir, "dr.files")
	joinCall(t, d, c, consultID)

	pdf := make([]byte, 300_000)
	_, _ = rand.Read(pdf)
	copy(pdf, "%PDF-1.7\n")
	steps := []struct {
		name    string
		content []byte
		status  int
		msg     string
	}{
		{"first", pdf, 201, ""},
		{"second", pdf[:1000], 201, ""},
		{"too large", append(bytes.Clone(pdf), make([]byte, 10<<20)...), 413, "documents are limited to 10 MiB"},
		{"third", pdf[:2000], 201, ""},
		{"over the consult's quota", pdf[:1000], 413, "this consult holds as many documents as it may: no more can be shared in it"},
		{"over the member's rate", pdf[:1000], 429, "too many files shared in a short time: wait a minute and try again"},
	}
	var firstID string
	for _, s := range steps {
		status, msg, retry := upload(t, d, c, consultID, s.content)
		if status != s.status || s.msg != "" && msg != s.msg {
			t.Fatalf("%s: %d %q, want %d %q", s.name, status, msg, s.status, s.msg)
		}
		// 5 a minute: the next upload is allowed within 12 s, less the time
		// the steps above took.
		if n, err := strconv.Atoi(retry); status == 429 && (err != nil || n < 1 || n > 12) {
			t.Fatalf("Retry-After %q, want 1 to 12 s (5 per minute)", retry)
		}
		if s.name == "first" {
			firstID = msg
		}
	}

	get := func(rng string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", d.public+"/consults/"+consultID+"/files/"+firstID, nil)
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
	resp, body := get("")
	if resp.StatusCode != 200 || !bytes.Equal(body, pdf) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download = %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Disposition"))
	}
	for _, r := range []struct {
		header     string
		start, end int
	}{{"bytes=0-99", 0, 100}, {"bytes=65530-65545", 65530, 65546}, {"bytes=-10", len(pdf) - 10, len(pdf)}, {"bytes=200000-", 200000, len(pdf)}} {
		resp, body := get(r.header)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, pdf[r.start:r.end]) {
			t.Fatalf("range %s = %d, %d bytes", r.header, resp.StatusCode, len(body))
		}
	}
}

func TestReadinessReportsAnUnusableObjectStore(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	t.Cleanup(func() { d.stop() })
	if resp, body := d.do(t, "GET", d.public+"/readyz", nil, ""); resp.StatusCode != 200 || !strings.Contains(body, `"object store":"ok"`) {
		t.Fatalf("/readyz = %d %q", resp.StatusCode, body)
	}
	objects := filepath.Join(dir, "objects")
	if err := os.Rename(objects, objects+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objects, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "/readyz reports the object store", func() bool {
		resp, body := d.do(t, "GET", d.public+"/readyz", nil, "")
		return resp.StatusCode == 503 && strings.Contains(body, "object store")
	})
}

func TestStartMovesDocumentsKeptInTheDatabaseIntoTheObjectStore(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	_, c, consultID := clinicianWithConsult(t, d, dir, "dr.move")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	content := append([]byte("%PDF-1.4\n"), make([]byte, 150_000)...)
	_, _ = rand.Read(content[9:])
	legacyDocument(t, dir, consultID, "d_legacy", content)

	d = startDev(t, dir)
	t.Cleanup(func() { d.stop() })
	if !strings.Contains(d.stderr.String(), `"msg":"shared documents moved into the object store","documents":1`) {
		t.Fatalf("no move logged:\n%s", d.stderr.String())
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row, err := db.DocumentByID(context.Background(), consultID, "d_legacy")
	if err != nil || len(row.DataEnc) != 0 || row.KeyEnc == nil {
		t.Fatalf("row after the start: %d bytes of content, key %v, %v", len(row.DataEnc), row.KeyEnc != nil, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", filepath.FromSlash(row.Object))); err != nil {
		t.Fatalf("object: %v", err)
	}
	resp, err := c.Get(d.public + "/consults/" + consultID + "/files/d_legacy")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, content) {
		t.Fatalf("download after the move = %d, %d bytes", resp.StatusCode, len(got))
	}
}

// legacyDocument stores a document as releases before the object store
// did: content and name sealed in the row (field AADs "documents.data:ID"
// and "documents.name:ID"), announced by chat message 1.
func legacyDocument(t *testing.T, dir, consultID, id string, content []byte) {
	t.Helper()
	legacyDocumentAt(t, dir, consultID, id, content, time.Now().UTC())
}

// legacyDocumentAt is legacyDocument shared at now.
func legacyDocumentAt(t *testing.T, dir, consultID, id string, content []byte, now time.Time) {
	t.Helper()
	ctx := context.Background()
	db, keys := openData(t, dir)
	defer db.Close()
	defer keys.Close()
	seal := func(v, aad string) []byte {
		b, err := keys.SealString(v, []byte(aad))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	doc := store.Document{ID: id, ConsultID: consultID, MemberID: "g_old", NameEnc: seal("old.pdf", "documents.name:"+id), ContentType: "application/pdf",
		Size: int64(len(content)), DataEnc: seal(string(content), "documents.data:"+id), CreatedAt: now}
	row := store.ChatRow{ConsultID: consultID, Seq: 1, MemberID: "g_old", NameEnc: seal("Pat", "chat_messages.name:"+consultID+":1"),
		TextEnc: seal("shared old.pdf", "chat_messages.text:"+consultID+":1"), CreatedAt: now, DocumentID: id}
	if _, err := db.ShareDocument(ctx, doc, store.DocumentQuota{}, func(int64) (store.ChatRow, error) { return row, nil }); err != nil {
		t.Fatal(err)
	}
}
