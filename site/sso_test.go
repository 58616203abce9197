package site

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/oidctest"
)

// ssoAccounts keeps what the site asked of the account service; the
// provisioning itself is tested in auth.
type ssoAccounts struct {
	Accounts
	mu       sync.Mutex
	signedIn []auth.External
	refused  []string
}

func (a *ssoAccounts) SignInExternal(_ context.Context, ext auth.External, _ auth.Client) (string, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.signedIn = append(a.signedIn, ext)
	if ext.Role == "" {
		return "", "", auth.ErrSSORefused
	}
	return "sso-session", auth.StageFull, nil
}

func (a *ssoAccounts) FailExternal(_ context.Context, provider, reason, _ string, _ auth.Client) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refused = append(a.refused, provider+": "+reason)
	return auth.ErrSSORefused
}

func (a *ssoAccounts) Session(context.Context, string) (auth.Identity, error) {
	return auth.Identity{}, auth.ErrNoSession
}

// ExternalProvider: the session SignInExternal opened belongs to the
// provider of the last sign-in.
func (a *ssoAccounts) ExternalProvider(_ context.Context, token string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if token != "sso-session" || len(a.signedIn) == 0 {
		return "", nil
	}
	return a.signedIn[len(a.signedIn)-1].Provider, nil
}

func (a *ssoAccounts) SignOut(context.Context, string) error { return nil }

// ssoSite runs the site with one real OpenID provider on loopback.
func ssoSite(t *testing.T) (*httptest.Server, *oidctest.Provider, *ssoAccounts) {
	t.Helper()
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	var h http.Handler
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	public, _ := url.Parse(srv.URL)
	flows, err := sso.New(sso.Options{Providers: []sso.Provider{{Name: "keycloak", Label: "Sign in with Keycloak", Issuer: op.URL,
		ClientID: op.ClientID, ClientSecret: op.ClientSecret, Roles: map[string]string{"clinicians": "clinician"}}},
		PublicURL: public, Sealer: testSealer(t)})
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
	return srv, op, accounts
}

// browser follows no redirect by itself, so each hop can be checked; it
// keeps cookies like a browser.
func browser(t *testing.T, srv *httptest.Server) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func get(t *testing.T, c *http.Client, target string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signInAtProvider clicks the button and returns the provider's answer to
// the callback.
func signInAtProvider(t *testing.T, srv *httptest.Server, c *http.Client) string {
	t.Helper()
	_, page := get(t, c, srv.URL+"/signin")
	if !strings.Contains(page, `href="/signin/sso/keycloak"`) || !strings.Contains(page, "Sign in with Keycloak") {
		t.Fatalf("sign-in page has no provider button:\n%s", page)
	}
	resp, _ := get(t, c, srv.URL+"/signin/sso/keycloak")
	flow := cookieNamed(resp, ssoCookie)
	if resp.StatusCode != http.StatusSeeOther || flow == nil || !flow.HttpOnly || !flow.Secure || flow.SameSite != http.SameSiteLaxMode {
		t.Fatalf("begin = %d, flow cookie %+v", resp.StatusCode, flow)
	}
	resp, _ = get(t, c, resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("provider answered %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestSSOSignInThroughTheSite(t *testing.T) {
	srv, op, accounts := ssoSite(t)
	op.SetUser(oidctest.User{Subject: "kc-1", Username: "jane.doe", Groups: []string{"clinicians"}})
	c := browser(t, srv)
	callback := signInAtProvider(t, srv, c)
	// The provider's return is a cross-site top-level GET.
	resp, page := get(t, c, callback, "Sec-Fetch-Site", "cross-site", "Origin", op.URL)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Refresh") != "0; url=/home" || !strings.Contains(page, `href="/home"`) {
		t.Fatalf("callback = %d, Refresh %q\n%s", resp.StatusCode, resp.Header.Get("Refresh"), page)
	}
	if s := cookieNamed(resp, sessionCookie); s == nil || s.Value != "sso-session" {
		t.Fatalf("no session cookie: %v", resp.Cookies())
	}
	if f := cookieNamed(resp, ssoCookie); f == nil || f.MaxAge >= 0 {
		t.Fatal("flow cookie not cleared")
	}
	want := auth.External{Provider: "keycloak", Subject: "kc-1", Username: "jane.doe", Role: "clinician"}
	if len(accounts.signedIn) != 1 || accounts.signedIn[0] != want {
		t.Fatalf("signed in %+v, want %+v", accounts.signedIn, want)
	}
	// The same return again: the flow is spent.
	resp, _ = get(t, c, callback)
	if resp.StatusCode != http.StatusForbidden || len(accounts.refused) != 1 || accounts.refused[0] != "keycloak: sign-in expired or not started here" {
		t.Fatalf("replayed callback = %d, refusals %q", resp.StatusCode, accounts.refused)
	}
}

func TestSSOCallbackRefusals(t *testing.T) {
	cases := []struct {
		name   string
		user   oidctest.User
		alter  func(callback string) string
		reason string // audited refusal before any account is touched
	}{
		{name: "forged state", user: oidctest.User{Subject: "kc-1", Username: "jane.doe", Groups: []string{"clinicians"}},
			alter: func(cb string) string {
				u, _ := url.Parse(cb)
				q := u.Query()
				q.Set("state", "x")
				u.RawQuery = q.Encode()
				return u.String()
			}, reason: "keycloak: state mismatch"},
		{name: "no mapped group", user: oidctest.User{Subject: "kc-2", Username: "joe", Groups: []string{"visitors"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, op, accounts := ssoSite(t)
			op.SetUser(tc.user)
			c := browser(t, srv)
			callback := signInAtProvider(t, srv, c)
			if tc.alter != nil {
				callback = tc.alter(callback)
			}
			resp, page := get(t, c, callback)
			if resp.StatusCode != http.StatusForbidden || cookieNamed(resp, sessionCookie) != nil || !strings.Contains(page, "Single sign-on did not let you in") {
				t.Fatalf("callback = %d, cookies %v", resp.StatusCode, resp.Cookies())
			}
			if tc.reason != "" && (len(accounts.refused) != 1 || accounts.refused[0] != tc.reason) {
				t.Fatalf("refusals %q, want %q", accounts.refused, tc.reason)
			}
		})
	}
}

func TestSSOUnknownProviderIsNotFound(t *testing.T) {
	srv, _, _ := ssoSite(t)
	c := browser(t, srv)
	for _, p := range []string{"/signin/sso/nobody", "/signin/sso/nobody/callback?code=x&state=y"} {
		if resp, _ := get(t, c, srv.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s = %d", p, resp.StatusCode)
		}
	}
}

func testSealer(t *testing.T) sso.Sealer {
	s, err := sso.KeySealer([]byte(rand.Text() + "012345"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSSOProviderDownIsAuditedAndAnswered502(t *testing.T) {
	srv, op, accounts := ssoSite(t)
	op.Close()
	resp, page := get(t, browser(t, srv), srv.URL+"/signin/sso/keycloak")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "cannot be reached") {
		t.Fatalf("begin with the provider down = %d", resp.StatusCode)
	}
	if len(accounts.refused) != 1 || accounts.refused[0] != "keycloak: discovery failed" {
		t.Fatalf("refusals %q", accounts.refused)
	}
}

func TestSSOSignOutEndsTheProviderSession(t *testing.T) {
	srv, op, _ := ssoSite(t)
	op.SetUser(oidctest.User{Subject: "kc-1", Username: "jane.doe", Groups: []string{"clinicians"}})
	c := browser(t, srv)
	callback := signInAtProvider(t, srv, c)
	if resp, _ := get(t, c, callback); resp.StatusCode != http.StatusOK {
		t.Fatalf("callback = %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/signout", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := op.URL + "/logout?client_id=openconsult&post_logout_redirect_uri=" + url.QueryEscape(srv.URL+"/signin")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Refresh") != "0; url="+want {
		t.Fatalf("signout = %d, Refresh %q", resp.StatusCode, resp.Header.Get("Refresh"))
	}
	if s := cookieNamed(resp, sessionCookie); s == nil || s.MaxAge >= 0 {
		t.Fatal("session cookie not cleared")
	}
	resp, _ = get(t, c, want)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != srv.URL+"/signin" || len(op.Logouts()) != 1 {
		t.Fatalf("provider logout = %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A session of a local account signs out here only.
	local := browser(t, srv)
	u, _ := url.Parse(srv.URL)
	local.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "local-session"}})
	resp, err = local.Post(srv.URL+"/signout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("local signout = %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
