package site

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/web/i18n"
)

func getPage(t *testing.T, h http.Handler, path string, header http.Header, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var htmlTag = regexp.MustCompile(`<html lang="([^"]*)" dir="([^"]*)">`)

func TestPagesSpeakTheRequestLanguage(t *testing.T) {
	w := newWorld(t, sitePublic)
	tests := []struct {
		name, accept, cookie, want, phrase string
	}{
		{"no preference", "", "", "en", "Video consultations"},
		{"French browser", "fr-FR,fr;q=0.9,en;q=0.5", "", "fr", "Téléconsultations"},
		{"Spanish browser", "es-AR", "", "es", "Videoconsultas"},
		{"unknown language", "de-DE", "", "en", "Video consultations"},
		{"chosen language beats the browser", "fr-FR", "es", "es", "Videoconsultas"},
		{"unknown choice falls back to the browser", "fr", "tlh", "fr", "Téléconsultations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cookies []*http.Cookie
			if tc.cookie != "" {
				cookies = append(cookies, &http.Cookie{Name: langCookie, Value: tc.cookie})
			}
			rec := getPage(t, w.handler, "/", http.Header{"Accept-Language": {tc.accept}}, cookies...)
			body := rec.Body.String()
			m := htmlTag.FindStringSubmatch(body)
			if m == nil || m[1] != tc.want || m[2] != "ltr" {
				t.Fatalf("html element %v, want lang %s dir ltr", m, tc.want)
			}
			if got := rec.Header().Get("Content-Language"); got != tc.want {
				t.Errorf("Content-Language %q", got)
			}
			if !strings.Contains(rec.Header().Get("Vary"), "Accept-Language") {
				t.Errorf("Vary %q", rec.Header().Get("Vary"))
			}
			if !strings.Contains(body, tc.phrase) {
				t.Errorf("page lacks %q", tc.phrase)
			}
			// The chooser offers every language in its own name and marks the current one.
			for _, option := range []string{`value="en" lang="en"( selected)?>English<`, `value="fr" lang="fr"( selected)?>Français<`,
				`value="es" lang="es"( selected)?>Español<`, `value="` + tc.want + `" lang="` + tc.want + `" selected>`} {
				if !regexp.MustCompile(option).MatchString(body) {
					t.Errorf("chooser lacks %s", option)
				}
			}
		})
	}
}

func TestErrorPagesAndFormErrorsAreTranslated(t *testing.T) {
	w := newWorld(t, sitePublic)
	rec := getPage(t, w.handler, "/no/such/page", http.Header{"Accept-Language": {"fr"}})
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "Page introuvable") {
		t.Errorf("French 404: %d\n%s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest("POST", "/j/"+linkLive, strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Language", "es")
	res := httptest.NewRecorder()
	w.handler.ServeHTTP(res, req)
	if res.Code != http.StatusUnprocessableEntity || !strings.Contains(res.Body.String(), "Escriba su nombre") {
		t.Errorf("Spanish join error: %d\n%s", res.Code, res.Body)
	}
}

func chooseLanguage(t *testing.T, h http.Handler, form url.Values, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/language", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestLanguageChooserRemembersTheChoice(t *testing.T) {
	w := newWorld(t, sitePublic)
	rec := chooseLanguage(t, w.handler, url.Values{"lang": {"fr"}, "back": {"/j/" + linkLive + "?x=1"}}, nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/j/"+linkLive+"?x=1" {
		t.Fatalf("choose = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != langCookie || cookies[0].Value != "fr" || !cookies[0].Secure || !cookies[0].HttpOnly ||
		cookies[0].Path != "/" || cookies[0].MaxAge < 30*24*3600 {
		t.Fatalf("cookies %+v", cookies)
	}
	page := getPage(t, w.handler, "/j/"+linkLive, http.Header{"Accept-Language": {"es"}}, cookies[0])
	if m := htmlTag.FindStringSubmatch(page.Body.String()); m == nil || m[1] != "fr" {
		t.Errorf("after choosing French: %v", m)
	}

	// A language the catalog lacks sets nothing.
	rec = chooseLanguage(t, w.handler, url.Values{"lang": {"xx"}, "back": {"/"}}, nil)
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 0 {
		t.Errorf("unknown language: %d, cookies %v", rec.Code, rec.Result().Cookies())
	}
	// Another site cannot post the chooser (cross-origin protection).
	rec = chooseLanguage(t, w.handler, url.Values{"lang": {"es"}, "back": {"/"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Errorf("cross-site choice: %d, cookies %v", rec.Code, rec.Result().Cookies())
	}
}

// TestLanguageChooserIsNoOpenRedirect: the chooser's return address comes
// from the form, so it only ever goes back to a path of this site.
func TestLanguageChooserIsNoOpenRedirect(t *testing.T) {
	w := newWorld(t, sitePublic)
	tests := map[string]string{
		"https://evil.example/":       "/",
		"//evil.example/path":         "/",
		"/\\evil.example":             "/",
		"\\\\evil.example":            "/",
		"javascript:alert(1)":         "/",
		"evil.example":                "/",
		"":                            "/",
		"/%2F%2Fevil.example":         "/",
		"/ok\r\nSet-Cookie: x=1":      "/",
		"/\t/evil.example":            "/",
		"/consults/c1?audio=only#top": "/consults/c1?audio=only",
		"/admin/users/u1/disable":     "/", // a form's answer, no page to go back to
		"/no/such/page":               "/",
		"/admin/audit?since=2026-01-31&type=signin": "/admin/audit?since=2026-01-31&type=signin",
	}
	for back, want := range tests {
		rec := chooseLanguage(t, w.handler, url.Values{"lang": {"es"}, "back": {back}}, nil)
		if got := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || got != want {
			t.Errorf("back %q: %d to %q, want %q", back, rec.Code, got, want)
		}
	}
}

func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "//evil", "/\\evil", "/a?b=c", "https://x", "/%00", "/a/../../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, back string) {
		got := localPath(back)
		u, err := url.Parse(got)
		if err != nil || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n\t") ||
			u.Host != "" || u.Scheme != "" {
			t.Fatalf("localPath(%q) = %q", back, got)
		}
	})
}

// testCatalog is English and a right-to-left language with a message that
// tries to break out of the page's script element.
func testSite(t *testing.T) http.Handler {
	t.Helper()
	en, err := i18n.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var files = fstest.MapFS{}
	enJSON, _ := json.Marshal(en.Lang("en").Messages(""))
	files["en.json"] = &fstest.MapFile{Data: enJSON}
	files["ar.json"] = &fstest.MapFile{Data: []byte(`{"meta.name": "العربية", "meta.dir": "rtl", "index.title": "استشارات بالفيديو",
		"js.call.mute": "</script><script>alert(1)</script>"}`)}
	catalog, err := i18n.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	s, err := New(Options{Log: log, Health: obs.NewHealth(log, time.Second), Metrics: obs.NewHTTPMetrics(obs.NewRegistry(), "site"), Catalog: catalog})
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func TestRightToLeftLanguageAndScriptMessages(t *testing.T) {
	h := testSite(t)
	rec := getPage(t, h, "/", http.Header{"Accept-Language": {"ar-EG"}})
	body := rec.Body.String()
	if m := htmlTag.FindStringSubmatch(body); m == nil || m[1] != "ar" || m[2] != "rtl" {
		t.Fatalf("html element %v, want lang ar dir rtl", m)
	}
	if !strings.Contains(body, "استشارات بالفيديو") || !strings.Contains(body, "Patients and guests") {
		t.Errorf("page should mix the Arabic message and the English fallback:\n%s", body)
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="i18n">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no messages for the scripts:\n%s", body)
	}
	var messages map[string]any
	if err := json.Unmarshal([]byte(m[1]), &messages); err != nil {
		t.Fatalf("script messages: %v\n%s", err, m[1])
	}
	if messages["js.call.mute"] != "</script><script>alert(1)</script>" {
		t.Errorf("js.call.mute = %v", messages["js.call.mute"])
	}
	for k := range messages {
		if !strings.HasPrefix(k, "js.") {
			t.Errorf("the page gives its scripts %q, which is not theirs", k)
		}
	}
	if plural, ok := messages["js.alerts.summary"].(map[string]any); !ok || plural["other"] == nil {
		t.Errorf("plural message shape %v", messages["js.alerts.summary"])
	}
	if strings.Count(body, "<script") != 2 {
		t.Errorf("a message broke out of its script element:\n%s", body)
	}
}

func TestTimesAreMachineReadable(t *testing.T) {
	at := time.Date(2026, 3, 2, 14, 5, 9, 0, time.FixedZone("CET", 3600))
	tests := map[string]string{
		"time":     `<time datetime="2026-03-02T13:05:09Z" data-format="time">13:05 UTC</time>`,
		"date":     `<time datetime="2026-03-02T13:05:09Z" data-format="date">2026-03-02</time>`,
		"datetime": `<time datetime="2026-03-02T13:05:09Z" data-format="datetime">2026-03-02 13:05 UTC</time>`,
		"seconds":  `<time datetime="2026-03-02T13:05:09Z" data-format="seconds">2026-03-02 13:05:09 UTC</time>`,
	}
	for format, want := range tests {
		got, err := timeElement(at, format)
		if err != nil || string(got) != want {
			t.Errorf("%s: %s, %v", format, got, err)
		}
	}
	if _, err := timeElement(at, "weekday"); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestChooserNeverCarriesTheSignOnCode: the page that answers a single
// sign-on callback must not copy its authorization code into the chooser.
func TestChooserNeverCarriesTheSignOnCode(t *testing.T) {
	w := newWorld(t, sitePublic)
	rec := getPage(t, w.handler, "/signin/sso/corp/callback?code=the-authorization-code&state=s", nil)
	body := rec.Body.String()
	if strings.Contains(body, "the-authorization-code") || !strings.Contains(body, `name="back" value="/signin"`) {
		t.Errorf("callback page %d:\n%s", rec.Code, body)
	}
	rec = getPage(t, w.handler, "/admin/audit?since=2026-01-31", nil, &http.Cookie{Name: sessionCookie, Value: sessAdmin})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `name="back" value="/admin/audit?since=2026-01-31"`) {
		t.Errorf("audit page's chooser loses its filter: %d", rec.Code)
	}
}
