package sso_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/internal/oidctest"
)

const site = "https://consult.example-hospital.org"

func newFlows(t *testing.T, op *oidctest.Provider, now func() time.Time) *sso.Flows {
	t.Helper()
	public, _ := url.Parse(site)
	f, err := sso.New(sso.Options{
		Providers: []sso.Provider{{Name: "keycloak", Label: "Hospital account", Issuer: op.URL, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
			Roles: map[string]string{"consult-admins": "admin", "clinicians": "clinician"}}},
		PublicURL: public, Sealer: testSealer(t), Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// visit plays the browser at the provider: it follows the authorization
// URL and returns the query the provider sends back to the callback.
func visit(t *testing.T, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %v", resp.StatusCode, err)
	}
	if want := site + "/signin/sso/keycloak/callback"; loc.Scheme+"://"+loc.Host+loc.Path != want {
		t.Fatalf("provider returned to %s, want %s", loc, want)
	}
	return loc.Query()
}

func reason(err error) string {
	var e *sso.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestSignInMapsGroupsToRoles(t *testing.T) {
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	f := newFlows(t, op, nil)
	cases := []struct {
		name   string
		groups []string
		role   string
	}{
		{"administrator group wins", []string{"clinicians", "consult-admins"}, "admin"},
		{"clinician group", []string{"staff", "clinicians"}, "clinician"},
		{"no mapped group", []string{"staff"}, ""},
		{"no groups at all", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op.SetUser(oidctest.User{Subject: "sub-" + tc.name, Username: "jdoe", Groups: tc.groups})
			authURL, sealed, err := f.Begin(context.Background(), "keycloak")
			if err != nil {
				t.Fatal(err)
			}
			q, _ := url.Parse(authURL)
			if q.Query().Get("code_challenge_method") != "S256" || q.Query().Get("nonce") == "" || q.Query().Get("state") == "" {
				t.Fatalf("authorization request lacks PKCE, nonce or state: %s", q.RawQuery)
			}
			id, err := f.Finish(context.Background(), "keycloak", visit(t, authURL), sealed)
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "sub-"+tc.name || id.Username != "jdoe" || id.Provider != "keycloak" || id.Role != tc.role {
				t.Fatalf("identity %+v, want role %q", id, tc.role)
			}
		})
	}
}

func TestFinishRefusesBadAnswers(t *testing.T) {
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	op.SetUser(oidctest.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}})
	f := newFlows(t, op, nil)
	cases := []struct {
		name   string
		tamper oidctest.Tamper
		alter  func(q url.Values, sealed string) (url.Values, string)
		reason string
	}{
		{name: "wrong audience", tamper: oidctest.Tamper{Audience: "another-app"}, reason: "id token audience"},
		{name: "expired token", tamper: oidctest.Tamper{Expired: true}, reason: "id token expired"},
		{name: "bad signature", tamper: oidctest.Tamper{ForeignKey: true}, reason: "id token signature"},
		{name: "wrong nonce", tamper: oidctest.Tamper{Nonce: "replayed-nonce"}, reason: "nonce mismatch"},
		{name: "wrong issuer", tamper: oidctest.Tamper{Issuer: "https://evil.example"}, reason: "id token issuer"},
		{name: "wrong state", alter: func(q url.Values, s string) (url.Values, string) { q.Set("state", "forged"); return q, s }, reason: "state mismatch"},
		{name: "no state", alter: func(q url.Values, s string) (url.Values, string) { q.Del("state"); return q, s }, reason: "state mismatch"},
		{name: "flow not started in this browser", alter: func(q url.Values, _ string) (url.Values, string) { return q, "" }, reason: "sign-in expired or not started here"},
		{name: "forged flow state", alter: func(q url.Values, s string) (url.Values, string) { return q, strings.ToUpper(s) }, reason: "sign-in expired or not started here"},
		{name: "forged code", alter: func(q url.Values, s string) (url.Values, string) { q.Set("code", "guess"); return q, s }, reason: "code exchange failed"},
		{name: "provider error", alter: func(q url.Values, s string) (url.Values, string) {
			q.Del("code")
			q.Set("error", "access_denied")
			return q, s
		}, reason: "provider refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op.SetTamper(tc.tamper)
			defer op.SetTamper(oidctest.Tamper{})
			authURL, sealed, err := f.Begin(context.Background(), "keycloak")
			if err != nil {
				t.Fatal(err)
			}
			q := visit(t, authURL)
			if tc.alter != nil {
				q, sealed = tc.alter(q, sealed)
			}
			id, err := f.Finish(context.Background(), "keycloak", q, sealed)
			if got := reason(err); got != tc.reason {
				t.Fatalf("Finish = %+v, %v; want reason %q", id, err, tc.reason)
			}
		})
	}
}

func TestFinishRefusesFlowOfAnotherProviderOrTooOld(t *testing.T) {
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	op.SetUser(oidctest.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}})
	now := time.Now()
	f := newFlows(t, op, func() time.Time { return now })
	authURL, sealed, err := f.Begin(context.Background(), "keycloak")
	if err != nil {
		t.Fatal(err)
	}
	q := visit(t, authURL)
	if _, err := f.Finish(context.Background(), "entra", q, sealed); reason(err) != "unknown provider" {
		t.Fatalf("other provider: %v", err)
	}
	now = now.Add(sso.FlowTTL + time.Second)
	if _, err := f.Finish(context.Background(), "keycloak", q, sealed); reason(err) != "sign-in expired or not started here" {
		t.Fatalf("old flow: %v", err)
	}
	if n := op.Exchanges(); n != 0 {
		t.Fatalf("%d codes exchanged for a refused flow", n)
	}
}

func TestCodeIsExchangedOnce(t *testing.T) {
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	op.SetUser(oidctest.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}})
	f := newFlows(t, op, nil)
	authURL, sealed, err := f.Begin(context.Background(), "keycloak")
	if err != nil {
		t.Fatal(err)
	}
	q := visit(t, authURL)
	if _, err := f.Finish(context.Background(), "keycloak", q, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Finish(context.Background(), "keycloak", q, sealed); reason(err) != "code exchange failed" {
		t.Fatalf("replayed callback: %v", err)
	}
}

func TestProviderCheck(t *testing.T) {
	good := sso.Provider{Name: "entra", Issuer: "https://login.microsoftonline.com/t/v2.0", ClientID: "c", ClientSecret: "s", Roles: map[string]string{"g": "clinician"}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(p *sso.Provider){
		"bad name":     func(p *sso.Provider) { p.Name = "Entra ID" },
		"plain http":   func(p *sso.Provider) { p.Issuer = "http://idp.example-hospital.org" },
		"no client id": func(p *sso.Provider) { p.ClientID = "" },
		"no secret":    func(p *sso.Provider) { p.ClientSecret = "" },
		"no roles":     func(p *sso.Provider) { p.Roles = nil },
		"unknown role": func(p *sso.Provider) { p.Roles = map[string]string{"g": "superuser"} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			p := good
			change(&p)
			if err := p.Check(); err == nil {
				t.Fatalf("%+v accepted", p)
			}
		})
	}
	if s := (sso.Provider{Name: "x", ClientSecret: "hunter2"}).String(); strings.Contains(s, "hunter2") {
		t.Fatalf("String shows the secret: %s", s)
	}
}

func testSealer(t *testing.T) sso.Sealer {
	s, err := sso.KeySealer([]byte(rand.Text() + "012345"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLogoutURLEndsTheProviderSession(t *testing.T) {
	op := oidctest.Start(t, "openconsult", "s3cret-"+rand.Text())
	public, _ := url.Parse(site)
	keep := sso.Provider{Name: "kept", Issuer: op.URL, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		Roles: map[string]string{"clinicians": "clinician"}, KeepProviderSession: true}
	ends := keep
	ends.Name, ends.KeepProviderSession = "keycloak", false
	f, err := sso.New(sso.Options{Providers: []sso.Provider{ends, keep}, PublicURL: public, Sealer: testSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.LogoutURL(context.Background(), "keycloak")
	want := op.URL + "/logout?client_id=openconsult&post_logout_redirect_uri=" + url.QueryEscape(site+"/signin")
	if err != nil || got != want {
		t.Fatalf("LogoutURL = %q, %v; want %q", got, err, want)
	}
	for _, name := range []string{"kept", "unknown"} {
		if got, err := f.LogoutURL(context.Background(), name); got != "" || err != nil {
			t.Fatalf("LogoutURL(%s) = %q, %v", name, got, err)
		}
	}
	op.Close()
	fresh, _ := sso.New(sso.Options{Providers: []sso.Provider{ends}, PublicURL: public, Sealer: testSealer(t)})
	if _, err := fresh.LogoutURL(context.Background(), "keycloak"); reason(err) != "discovery failed" {
		t.Fatalf("LogoutURL with the provider down: %v", err)
	}
}
