package main

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

// post sends a form from the server's own origin, with extra headers.
func (d *devServer) post(t *testing.T, path string, form url.Values, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest("POST", d.public+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.public)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func randomToken(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestPatientsJoiningFromOneAddressLeaveStaffSignInAlone(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	// Ten patients of a clinic behind one NAT address open their links.
	for i := range 10 {
		if code := d.post(t, "/j/"+randomToken(t), url.Values{"name": {"Patient"}}, nil); code != http.StatusGone {
			t.Fatalf("join %d = %d, want 410 for the unknown link", i+1, code)
		}
	}
	// The clinic's staff still sign in from the same address.
	if code := d.post(t, "/signin", url.Values{"username": {"dr.nat"}, "password": {"not the password"}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("staff sign-in after the joins = %d, want 401 (checked, not rate-limited)", code)
	}
}

func TestRateLimitUsesTheClientNamedByATrustedProxy(t *testing.T) {
	d := startDev(t, t.TempDir(), "-trusted-proxy", "127.0.0.0/8")
	defer d.stop()
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"198.51.100.9, " + ip}} }
	form := url.Values{"username": {"nobody.here"}}
	// Reset requests: limited per address like sign-ins, answered at once.
	for i := range 10 {
		if code := d.post(t, "/reset", form, from("192.0.2.1")); code != http.StatusOK {
			t.Fatalf("request %d = %d, want 200", i+1, code)
		}
	}
	if code := d.post(t, "/reset", form, from("192.0.2.1")); code != http.StatusTooManyRequests {
		t.Fatalf("eleventh request from one client = %d, want 429", code)
	}
	if code := d.post(t, "/reset", form, from("192.0.2.2")); code != http.StatusOK {
		t.Fatalf("another client behind the same proxy = %d, want 200", code)
	}
}

func TestGuessingTheCurrentPasswordLocksTheAccountAndEndsTheSession(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	const password = "first admin passphrase"
	createFirstAdmin(t, d, "root.admin", password)
	admin := signInHTTP(t, d, "root.admin", password)
	admin.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	guess := url.Values{"current": {"a wrong guess!!"}, "password": {"a brand new passphrase"}, "confirm": {"a brand new passphrase"}}
	for i := 1; i < 5; i++ {
		if resp, _ := postForm(t, admin, d.public+"/account/password", guess); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong current password %d = %d, want 422", i, resp.StatusCode)
		}
	}
	resp, body := postForm(t, admin, d.public+"/account/password", guess)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Too many failed attempts") {
		t.Fatalf("fifth wrong current password = %d, want 401 and the lockout", resp.StatusCode)
	}
	if resp, _ := postForm(t, admin, d.public+"/account/password", guess); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("the session survived the lockout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code := d.post(t, "/signin", url.Values{"username": {"root.admin"}, "password": {password}}, nil); code != http.StatusUnauthorized {
		t.Fatalf("sign-in with the right password while locked = %d, want 401", code)
	}
}

func TestResetRequestIsAnsweredThenMailed(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	defer d.stop()
	createFirstAdmin(t, d, "root.admin", "first admin passphrase")
	admin := signInHTTP(t, d, "root.admin", "first admin passphrase")
	createClinician(t, d, dir, admin, "dr.reset", "clinician passphrase 1")
	for _, name := range []string{"dr.reset", "nobody.here"} {
		if code := d.post(t, "/reset", url.Values{"username": {name}}, nil); code != http.StatusOK {
			t.Fatalf("reset request for %s = %d", name, code)
		}
	}
	eventually.True(t, 10*time.Second, "the reset mail in the outbox", func() bool {
		entries, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, "outbox", e.Name()))
			if strings.Contains(string(b), "/reset/") {
				return true
			}
		}
		return false
	})
}

var patientLinkPattern = regexp.MustCompile(`/j/[A-Za-z0-9_-]{22,64}`)

func TestInvisibleFormattingInNamesAndTitlesIsRefusedWithAClearMessage(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	defer d.stop()
	createFirstAdmin(t, d, "root.admin", "first admin passphrase")
	admin := signInHTTP(t, d, "root.admin", "first admin passphrase")
	createClinician(t, d, dir, admin, "dr.bidi", "clinician passphrase 1")
	doc := signInHTTP(t, d, "dr.bidi", "clinician passphrase 1")

	resp, body := postForm(t, doc, d.public+"/consults", url.Values{"title": {"Follow-up \u202Egnp.exe"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "The title contains invisible formatting characters") {
		t.Fatalf("title with an override = %d, want 422 and the reason", resp.StatusCode)
	}
	_, body = postForm(t, doc, d.public+"/consults", url.Values{"title": {"Follow-up"}})
	link := patientLinkPattern.FindString(body)
	if link == "" {
		t.Fatal("no patient link on the consult page")
	}
	guest := d.staffClient(t)
	for _, name := range []string{"Pat\u202Efdp.exe", "\u2067Pat\u2069", "Pat\u200F"} {
		resp, body := postForm(t, guest, d.public+link, url.Values{"name": {name}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "invisible formatting characters") {
			t.Fatalf("join as %q = %d, want 422 and the reason", name, resp.StatusCode)
		}
	}
	if resp, _ := postForm(t, guest, d.public+link, url.Values{"name": {"Pat"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("join with a plain name = %d, want 303", resp.StatusCode)
	}
}
