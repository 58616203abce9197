package site

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/samltest"
	"github.com/openconsult/openconsult/store"
)

// samlSite runs the site with one real SAML identity provider on loopback,
// registered there from the metadata the site publishes, and assertions
// remembered in a real database.
func samlSite(t *testing.T) (*httptest.Server, *samltest.IdP, *ssoAccounts) {
	t.Helper()
	idp := samltest.Start(t)
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	public, _ := url.Parse(srv.URL)
	flows, err := sso.New(sso.Options{SAML: []sso.SAMLProvider{{Name: "adfs", Label: "Sign in with AD FS", MetadataURL: idp.MetadataURL,
		GroupsAttribute: "eduPersonAffiliation", Roles: map[string]string{"clinicians": "clinician"}}},
		Ledger: db, PublicURL: public, Sealer: testSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	accounts := &ssoAccounts{}
	log := slog.New(slog.DiscardHandler)
	s, err := New(Options{Log: log, Health: obs.NewHealth(log, time.Second), Metrics: obs.NewHTTPMetrics(obs.NewRegistry(), "site"),
		Accounts: accounts, SSO: flows, SSOAccounts: accounts, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	h = s.Handler()
	resp, md := get(t, srv.Client(), srv.URL+"/signin/sso/adfs/metadata")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("metadata = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	idp.Register(t, "openconsult", []byte(md))
	return srv, idp, accounts
}

// postACS plays the browser posting the provider's answer from the
// provider's page: a cross-site top-level POST, with the flow cookie.
func postACS(t *testing.T, c *http.Client, p samltest.Post, origin string, flow *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.Action, strings.NewReader(p.Form().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", origin)
	if flow != nil {
		req.AddCookie(flow)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// beginSAML clicks the provider's button and returns the flow cookie and
// the provider's answer.
func beginSAML(t *testing.T, srv *httptest.Server, idp *samltest.IdP) (*http.Cookie, samltest.Post) {
	t.Helper()
	c := browser(t, srv)
	if _, page := get(t, c, srv.URL+"/signin"); !strings.Contains(page, `href="/signin/sso/adfs"`) || !strings.Contains(page, "Sign in with AD FS") {
		t.Fatalf("sign-in page has no provider button:\n%s", page)
	}
	resp, _ := get(t, c, srv.URL+"/signin/sso/adfs")
	flow := cookieNamed(resp, samlCookie)
	if resp.StatusCode != http.StatusSeeOther || flow == nil || !flow.HttpOnly || !flow.Secure || flow.SameSite != http.SameSiteNoneMode {
		t.Fatalf("begin = %d, flow cookie %+v", resp.StatusCode, flow)
	}
	if !strings.HasPrefix(resp.Header.Get("Location"), idp.URL+"/sso?SAMLRequest=") {
		t.Fatalf("begin sends the browser to %s", resp.Header.Get("Location"))
	}
	idp.SetUser(t, "jdoe", "pw", "jane.doe@example-hospital.org", "clinicians")
	return flow, idp.SignIn(t, resp.Header.Get("Location"), "jdoe", "pw")
}

func TestSAMLSignInThroughTheSiteAndReplayRefused(t *testing.T) {
	srv, idp, accounts := samlSite(t)
	flow, post := beginSAML(t, srv, idp)
	if post.Action != srv.URL+"/signin/sso/adfs/acs" {
		t.Fatalf("the provider posts to %s", post.Action)
	}
	c := browser(t, srv)
	resp := postACS(t, c, post, idp.URL, flow)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Refresh") != "0; url=/home" {
		t.Fatalf("acs = %d, Refresh %q", resp.StatusCode, resp.Header.Get("Refresh"))
	}
	if s := cookieNamed(resp, sessionCookie); s == nil || s.Value != "sso-session" {
		t.Fatalf("no session cookie: %v", resp.Cookies())
	}
	if f := cookieNamed(resp, samlCookie); f == nil || f.MaxAge >= 0 {
		t.Fatal("flow cookie not cleared")
	}
	want := auth.External{Provider: "adfs", Subject: "jane.doe@example-hospital.org", Username: "jane.doe@example-hospital.org", Role: "clinician"}
	if len(accounts.signedIn) != 1 || accounts.signedIn[0] != want {
		t.Fatalf("signed in %+v, want %+v", accounts.signedIn, want)
	}
	// The captured post and flow cookie, posted again from anywhere.
	resp = postACS(t, browser(t, srv), post, idp.URL, flow)
	if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
		t.Fatalf("replayed post = %d", resp.StatusCode)
	}
	if len(accounts.refused) != 1 || accounts.refused[0] != "adfs: assertion replayed" {
		t.Fatalf("refusals %q", accounts.refused)
	}
}

func TestSAMLAssertionConsumerServiceRefusals(t *testing.T) {
	cases := []struct {
		name   string
		alter  func(p *samltest.Post, flow **http.Cookie)
		reason string
	}{
		{"unsigned", func(p *samltest.Post, _ **http.Cookie) { p.SAMLResponse = samltest.Unsigned(t, p.SAMLResponse) }, "adfs: assertion unsigned"},
		{"no flow cookie", func(_ *samltest.Post, flow **http.Cookie) { *flow = nil }, "adfs: sign-in expired or not started here"},
		{"forged RelayState", func(p *samltest.Post, _ **http.Cookie) { p.RelayState = "x" }, "adfs: state mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, idp, accounts := samlSite(t)
			flow, post := beginSAML(t, srv, idp)
			tc.alter(&post, &flow)
			resp := postACS(t, browser(t, srv), post, idp.URL, flow)
			if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil {
				t.Fatalf("acs = %d", resp.StatusCode)
			}
			if len(accounts.signedIn) != 0 || len(accounts.refused) != 1 || accounts.refused[0] != tc.reason {
				t.Fatalf("refusals %q, want %q", accounts.refused, tc.reason)
			}
		})
	}
}

func TestSAMLRoutesOnlyForSAMLProviders(t *testing.T) {
	srv, _, _ := ssoSite(t) // an OpenID Connect provider only
	c := browser(t, srv)
	for _, p := range []string{"/signin/sso/keycloak/metadata", "/signin/sso/nobody/metadata"} {
		if resp, _ := get(t, c, srv.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s = %d", p, resp.StatusCode)
		}
	}
	resp := postACS(t, c, samltest.Post{Action: srv.URL + "/signin/sso/keycloak/acs", SAMLResponse: "x"}, "https://evil.example", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("acs of an OpenID Connect provider = %d", resp.StatusCode)
	}
	// Other routes still refuse a cross-site POST.
	resp = postACS(t, c, samltest.Post{Action: srv.URL + "/signin"}, "https://evil.example", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST /signin = %d", resp.StatusCode)
	}
}
