package site

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/recording"
	"github.com/openconsult/openconsult/store"
)

// recordingWorld is the site over the fakes with a real recording
// service: SQLite, the keyring and the filesystem object store, holding
// one recording of Alice's live consult whose one file is content,
// stored as three segments.
type recordingWorld struct {
	*world
	content []byte
	rec     string
	file    string
	objDir  string
	segs    []store.RecordingSegment
	audit   *orderedAudit
	db      *store.DB
}

// orderedAudit is a test double of the audit log that notes each entry
// in the log its response writer shares, so a test sees what came first.
type orderedAudit struct {
	mu     sync.Mutex
	events []string
	log    *[]string
	fail   error
}

func (a *orderedAudit) RecordSession(_ context.Context, event, consultID, memberID, _ string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	e := event + " " + consultID + " " + memberID + " " + fields["file"]
	a.events = append(a.events, e)
	if a.log != nil {
		*a.log = append(*a.log, "audit")
	}
	return nil
}

func newRecordingWorld(t *testing.T, roles ...string) *recordingWorld {
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
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	if err := db.CreateUser(ctx, store.User{ID: alice.ID, Username: alice.Username, Role: "clinician", PasswordHash: "!", CreatedAt: at}, []byte("a"), at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	l := store.ConsultLink{ID: "l", ConsultID: consultLive, TokenHash: []byte("h"), TokenEnc: []byte("s"), Label: "patient", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := db.CreateConsult(ctx, store.Consult{ID: consultLive, OwnerID: alice.ID, CreatedAt: at}, l); err != nil {
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
	objects := objstore.New(backend, keys).WithChunkSize(10) // 1 KiB chunks
	w := &recordingWorld{world: newWorld(t, sitePublic), content: make([]byte, 9000), rec: "r_1", file: "f_1", objDir: objDir, audit: &orderedAudit{}, db: db}
	_, _ = rand.Read(w.content)
	name, _ := keys.SealString("Pat Patient", []byte("recordings.consent:r_1:g-live"))
	if err := db.CreateRecording(ctx, store.Recording{ID: w.rec, ConsultID: consultLive, RequestedBy: alice.ID, StartedAt: at},
		[]store.RecordingConsent{{MemberID: "g-live", NameEnc: name, At: at}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRecordingFile(ctx, store.RecordingFile{ID: w.file, RecordingID: w.rec, MemberID: "g-live", Kinds: "audio+video"}); err != nil {
		t.Fatal(err)
	}
	for seq, part := range [][]byte{w.content[:300], w.content[300:5000], w.content[5000:]} {
		obj, err := objects.Put(ctx, fmt.Sprintf("recordings/o_1/%06d", seq), bytes.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		s := store.RecordingSegment{FileID: w.file, Seq: seq, Object: obj.Name, KeyEnc: obj.SealedKey, Size: obj.Size}
		if err := db.PutRecordingSegment(ctx, s, time.Minute, at); err != nil {
			t.Fatal(err)
		}
		w.segs = append(w.segs, s)
	}
	if _, err := db.EndRecording(ctx, w.rec, at.Add(time.Minute), store.RecordingComplete, "requested", time.Minute); err != nil {
		t.Fatal(err)
	}
	svc := &recording.Service{Store: db, Objects: objects, Sealer: keys, Audit: w.audit, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return at.Add(time.Hour) }}
	w.site.opt.Recordings, w.site.opt.RecordingRoles, w.site.opt.DocAudit = svc, roles, w.audit
	w.handler = w.site.Handler()
	return w
}

func (w *recordingWorld) path() string {
	return "/consults/" + consultLive + "/recordings/" + w.rec + "/files/" + w.file
}

// orderedWriter notes the first byte of the response in a log that the
// audit double also writes.
type orderedWriter struct {
	*httptest.ResponseRecorder
	log *[]string
}

func (o orderedWriter) WriteHeader(code int) {
	*o.log = append(*o.log, "header")
	o.ResponseRecorder.WriteHeader(code)
}

func (o orderedWriter) Write(b []byte) (int, error) {
	*o.log = append(*o.log, "body")
	return o.ResponseRecorder.Write(b)
}

func (w *recordingWorld) get(t *testing.T, path, session, rangeHeader string) (*httptest.ResponseRecorder, []string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if session != "" {
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
	}
	if rangeHeader != "" {
		r.Header.Set("Range", rangeHeader)
	}
	var order []string
	w.audit.log = &order
	rec := httptest.NewRecorder()
	w.handler.ServeHTTP(orderedWriter{rec, &order}, r)
	w.audit.log = nil
	return rec, order
}

func TestRecordingsAreOnlyForTheClinicianAndAllowedRoles(t *testing.T) {
	for _, c := range []struct {
		name    string
		session string
		roles   []string
		want    int
	}{
		{"not signed in", "", nil, http.StatusSeeOther},
		{"the consult's clinician", sessAlice, nil, http.StatusOK},
		{"another clinician", sessBob, nil, http.StatusForbidden},
		{"an administrator by default", sessAdmin, nil, http.StatusForbidden},
		{"an administrator when the institution allows", sessAdmin, []string{"admin"}, http.StatusOK},
		{"the clinician with the code pending", sessAliceCode, nil, http.StatusSeeOther},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newRecordingWorld(t, c.roles...)
			for _, p := range []string{w.path(), "/consults/" + consultLive + "/recordings"} {
				rec, _ := w.get(t, p, c.session, "")
				if rec.Code != c.want {
					t.Fatalf("GET %s = %d, want %d\n%s", p, rec.Code, c.want, rec.Body)
				}
			}
			rec, _ := w.get(t, w.path(), c.session, "")
			if served := bytes.Equal(rec.Body.Bytes(), w.content); served != (c.want == http.StatusOK) {
				t.Fatalf("content served = %v", served)
			}
			if c.want != http.StatusOK && len(w.audit.events) != 0 {
				t.Fatalf("audited %q for a refused request", w.audit.events)
			}
		})
	}
	t.Run("a guest of the consult", func(t *testing.T) {
		w := newRecordingWorld(t)
		r := httptest.NewRequest("GET", w.path(), nil)
		r.AddCookie(&http.Cookie{Name: guestCookie, Value: guestLive})
		rec := httptest.NewRecorder()
		w.handler.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK || bytes.Contains(rec.Body.Bytes(), w.content[:64]) {
			t.Fatalf("guest got %d", rec.Code)
		}
	})
}

func TestRecordPageListsAndPlaysRecordings(t *testing.T) {
	w := newRecordingWorld(t)
	rec, _ := w.get(t, "/consults/"+consultLive+"/record", sessAlice, "")
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("record page %d", rec.Code)
	}
	for _, want := range []string{`<video controls preload="none" playsinline src="` + w.path() + `"`, "Pat Patient (guest) at <time", "<dd>1:00</dd>", `<data value="9000" data-format="size">9000 bytes</data>`, "audio and video, 1:00 long", w.path() + "?download=1"} {
		if !strings.Contains(body, want) {
			t.Errorf("record page lacks %q", want)
		}
	}
}

func TestRecordPageShowsRecordingsInTheReadersLanguage(t *testing.T) {
	w := newRecordingWorld(t)
	for lang, want := range map[string][]string{
		"fr": {"Enregistrements", "complet", "son et image, durée 1:00", "Pat Patient (par lien d’invitation) à <time", "Pat Patient\u00a0: son et image", "Télécharger l’enregistrement de Pat Patient"},
		"es": {"Grabaciones", "completa", "audio y vídeo, duración 1:00", "Pat Patient (por enlace de invitación) a las <time", "Descargar la grabación de Pat Patient"},
	} {
		r := httptest.NewRequest("GET", "/consults/"+consultLive+"/record", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessAlice})
		r.Header.Set("Accept-Language", lang)
		rec := httptest.NewRecorder()
		w.handler.ServeHTTP(rec, r)
		body := rec.Body.String()
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("%s: the record page lacks %q", lang, s)
			}
		}
		for _, en := range []string{"Recording of", "audio and video", "(guest)", "Download the recording"} {
			if strings.Contains(body, en) {
				t.Errorf("%s: the record page says %q", lang, en)
			}
		}
	}
}

func TestRecordingLengthsReadTheSameInEveryLanguage(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0:00"}, {4*time.Minute + 32*time.Second, "4:32"}, {59*time.Minute + 59600*time.Millisecond, "1:00:00"},
		{time.Hour + 5*time.Minute + 9*time.Second, "1:05:09"}, {-time.Second, "0:00"},
	} {
		if got := clock(c.d); got != c.want {
			t.Errorf("clock(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestRecordingPlaybackServesRangesAuditedFirst(t *testing.T) {
	w := newRecordingWorld(t)
	for _, c := range []struct {
		rng       string
		code      int
		from, to  int // expected content[from:to]
		contRange string
	}{
		{"", http.StatusOK, 0, 9000, ""},
		{"bytes=0-", http.StatusPartialContent, 0, 9000, "bytes 0-8999/9000"},
		{"bytes=250-5100", http.StatusPartialContent, 250, 5101, "bytes 250-5100/9000"},
		{"bytes=8000-", http.StatusPartialContent, 8000, 9000, "bytes 8000-8999/9000"},
		{"bytes=-10", http.StatusPartialContent, 8990, 9000, "bytes 8990-8999/9000"},
	} {
		rec, order := w.get(t, w.path(), sessAlice, c.rng)
		if rec.Code != c.code || !bytes.Equal(rec.Body.Bytes(), w.content[c.from:c.to]) || rec.Header().Get("Content-Range") != c.contRange {
			t.Fatalf("Range %q = %d %q, %d bytes", c.rng, rec.Code, rec.Header().Get("Content-Range"), rec.Body.Len())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "video/webm" || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "inline") {
			t.Fatalf("served as %q, %q", ct, rec.Header().Get("Content-Disposition"))
		}
		fresh := c.rng == "" || c.rng == "bytes=0-"
		if len(order) == 0 || order[len(order)-1] != "body" || fresh && order[0] != "audit" || !fresh && order[0] == "audit" {
			t.Fatalf("Range %q: order %v", c.rng, order)
		}
	}
	// A view starts at byte 0; the ranges of its seeks are part of it. A
	// download is audited on its own, also before its first byte.
	want := "recording.viewed c-live u-alice f_1"
	if len(w.audit.events) != 2 || w.audit.events[0] != want || w.audit.events[1] != want {
		t.Fatalf("audit = %q", w.audit.events)
	}
	rec, order := w.get(t, w.path()+"?download=1", sessAlice, "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") || !bytes.Equal(rec.Body.Bytes(), w.content) {
		t.Fatalf("download = %d %q", rec.Code, rec.Header().Get("Content-Disposition"))
	}
	if len(order) < 2 || order[0] != "audit" || len(w.audit.events) != 3 || w.audit.events[2] != "recording.downloaded c-live u-alice f_1" {
		t.Fatalf("download: order %v, audit %q", order, w.audit.events)
	}
}

func TestRecordingIsNotServedWhenTheAuditFails(t *testing.T) {
	w := newRecordingWorld(t)
	w.audit.fail = errors.New("audit log unavailable")
	rec, _ := w.get(t, w.path(), sessAlice, "")
	if rec.Code != http.StatusInternalServerError || bytes.Contains(rec.Body.Bytes(), w.content[:64]) {
		t.Fatalf("unaudited view = %d", rec.Code)
	}
	// The next attempt is audited again, not taken as already audited.
	w.audit.fail = nil
	if rec, _ := w.get(t, w.path(), sessAlice, ""); rec.Code != http.StatusOK || len(w.audit.events) != 1 {
		t.Fatalf("after the audit recovered: %d, %q", rec.Code, w.audit.events)
	}
}

func TestTamperedRecordingChunkIsRefused(t *testing.T) {
	w := newRecordingWorld(t)
	// Alter one byte of the second segment's second chunk (plaintext
	// bytes 1324 to 2347 of the file).
	path := filepath.Join(w.objDir, filepath.FromSlash(w.segs[1].Object))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/4] ^= 0x40
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, rng := range []string{"bytes=1400-1500", "bytes=1500-"} {
		rec, _ := w.get(t, w.path(), sessAlice, rng)
		if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "damaged") || rec.Header().Get("Content-Range") != "" {
			t.Fatalf("Range %s of a tampered chunk = %d %q\n%s", rng, rec.Code, rec.Header().Get("Content-Range"), rec.Body)
		}
	}
	// A response that reaches the altered chunk later stops there: every
	// byte sent is the recording's own.
	rec, _ := w.get(t, w.path(), sessAlice, "")
	if rec.Body.Len() >= len(w.content) || !bytes.Equal(rec.Body.Bytes(), w.content[:rec.Body.Len()]) {
		t.Fatalf("whole file over a tampered chunk: %d bytes, a prefix: %v", rec.Body.Len(), bytes.HasPrefix(w.content, rec.Body.Bytes()))
	}
	// Untouched parts still play.
	if rec, _ := w.get(t, w.path(), sessAlice, "bytes=6000-6100"); rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), w.content[6000:6101]) {
		t.Fatalf("untouched range = %d", rec.Code)
	}
}

func TestOnlyAdministratorsDeleteRecordingsAndNotUnderLegalHold(t *testing.T) {
	w := newRecordingWorld(t, "admin")
	post := func(session string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/consults/"+consultLive+"/recordings/"+w.rec+"/delete", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
		rec := httptest.NewRecorder()
		w.handler.ServeHTTP(rec, r)
		return rec
	}
	if rec := post(sessAlice); rec.Code != http.StatusForbidden {
		t.Fatalf("the clinician deletes: %d", rec.Code)
	}
	page, _ := w.get(t, "/consults/"+consultLive+"/recordings", sessAdmin, "")
	if !strings.Contains(page.Body.String(), `action="/consults/`+consultLive+`/recordings/`+w.rec+`/delete"`) {
		t.Fatalf("the administrator's page has no delete form")
	}
	if _, err := w.db.SetLegalHold(context.Background(), consultLive, true); err != nil {
		t.Fatal(err)
	}
	if rec := post(sessAdmin); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "legal hold") {
		t.Fatalf("deletion under legal hold: %d", rec.Code)
	}
	if _, err := w.db.SetLegalHold(context.Background(), consultLive, false); err != nil {
		t.Fatal(err)
	}
	if rec := post(sessAdmin); rec.Code != http.StatusSeeOther {
		t.Fatalf("deletion: %d\n%s", rec.Code, rec.Body)
	}
	if len(w.audit.events) != 1 || !strings.HasPrefix(w.audit.events[0], "recording.deleted c-live u-admin") {
		t.Fatalf("audit %q", w.audit.events)
	}
	if rec, _ := w.get(t, w.path(), sessAlice, ""); rec.Code != http.StatusGone {
		t.Fatalf("deleted recording served: %d", rec.Code)
	}
	if objs, _ := os.ReadDir(filepath.Join(w.objDir, "recordings", "o_1")); len(objs) != 0 {
		t.Fatalf("%d objects left", len(objs))
	}
}
