package sso_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/internal/oidctest/zitadelop"
)

// These tests run the sign-in against a provider built on an
// OpenID-certified provider library (internal/oidctest/zitadelop), so the
// relying party is checked against an implementation it was not written
// with.

const certifiedCallback = site + "/signin/sso/keycloak/callback"

var certifiedRoles = map[string]string{"consult-admins": "admin", "clinicians": "clinician"}

func startCertified(t *testing.T) (*zitadelop.Provider, zitadelop.Client) {
	t.Helper()
	c := zitadelop.Client{ID: "openconsult", Secret: "s3cret-" + rand.Text(), RedirectURIs: []string{certifiedCallback}}
	return zitadelop.Start(t, c), c
}

// certifiedFlows is the site's flows for provider p; client is the HTTP
// client the site talks to the provider with.
func certifiedFlows(t *testing.T, p *zitadelop.Provider, c zitadelop.Client, client *http.Client) *sso.Flows {
	t.Helper()
	public, _ := url.Parse(site)
	f, err := sso.New(sso.Options{
		Providers: []sso.Provider{{Name: "keycloak", Issuer: p.URL, ClientID: c.ID, ClientSecret: c.Secret, Roles: certifiedRoles}},
		PublicURL: public, Sealer: testSealer(t), HTTPClient: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// browse plays the browser at the provider: it follows the authorization
// URL through the provider's sign-in and returns the query of the final
// redirect, which leaves the provider for redirectURI.
func browse(t *testing.T, p *zitadelop.Provider, authURL, redirectURI string) url.Values {
	t.Helper()
	c := p.HTTPClient()
	c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if r.URL.Scheme+"://"+r.URL.Host != p.URL {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %v %s", resp.StatusCode, err, body)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		t.Fatalf("provider returned to %s, want %s", got, redirectURI)
	}
	return loc.Query()
}

func TestCertifiedProviderSignInMapsGroupsToRoles(t *testing.T) {
	p, c := startCertified(t)
	f := certifiedFlows(t, p, c, p.HTTPClient())
	cases := []struct {
		name     string
		user     zitadelop.User
		username string
		role     string
	}{
		{"administrator group wins", zitadelop.User{Username: "jdoe", Groups: []string{"clinicians", "consult-admins"}}, "jdoe", "admin"},
		{"clinician group", zitadelop.User{Username: "jdoe", Groups: []string{"staff", "clinicians"}}, "jdoe", "clinician"},
		{"email when no username", zitadelop.User{Email: "jdoe@example-hospital.org", Groups: []string{"clinicians"}}, "jdoe@example-hospital.org", "clinician"},
		{"no mapped group", zitadelop.User{Username: "jdoe", Groups: []string{"staff"}}, "jdoe", ""},
		{"no groups at all", zitadelop.User{Username: "jdoe"}, "jdoe", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.user.Subject = "sub-" + rand.Text()
			p.SetUser(tc.user)
			authURL, sealed, err := f.Begin(context.Background(), "keycloak")
			if err != nil {
				t.Fatal(err)
			}
			id, err := f.Finish(context.Background(), "keycloak", browse(t, p, authURL, certifiedCallback), sealed)
			if err != nil {
				t.Fatal(err)
			}
			want := sso.Identity{Provider: "keycloak", Subject: tc.user.Subject, Username: tc.username, Groups: tc.user.Groups, Role: tc.role}
			if id.Provider != want.Provider || id.Subject != want.Subject || id.Username != want.Username || id.Role != want.Role ||
				strings.Join(id.Groups, ",") != strings.Join(want.Groups, ",") {
				t.Fatalf("identity %+v, want %+v", id, want)
			}
		})
	}
}

// The provider library puts the requesting client in every ID token's
// audience and its own issuer in iss, so tokens with another audience or
// issuer cannot come from the code exchange itself. They are real tokens
// the same provider issued to another application, and one another
// provider issued to this client, put into the token response in transit
// by substitutingTransport (a test double standing for a token
// substitution attack).
func TestCertifiedProviderRefusesBadAnswers(t *testing.T) {
	p, c := startCertified(t)
	user := zitadelop.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}}
	p.SetUser(user)
	other := zitadelop.Client{ID: "another-app", Secret: "other-" + rand.Text(), RedirectURIs: []string{"https://another-app.example-hospital.org/cb"}}
	p.AddClient(other)
	otherApp := issueIDToken(t, p, other)
	elsewhere, _ := startCertified(t)
	elsewhere.AddClient(c)
	elsewhere.SetUser(user)
	otherIssuer := issueIDToken(t, elsewhere, c)

	sub := &substitutingTransport{base: p.HTTPClient().Transport, tokenURL: p.URL + "/oauth/token"}
	f := certifiedFlows(t, p, c, &http.Client{Transport: sub, Timeout: 10 * time.Second})
	cases := []struct {
		name       string
		tamper     zitadelop.Tamper
		substitute string
		alter      func(q url.Values, sealed string) (url.Values, string)
		reason     string
	}{
		{name: "token of another application", substitute: otherApp, reason: "id token audience"},
		// go-oidc checks the signature before the issuer, and the other
		// provider signs with its own key.
		{name: "token of another provider", substitute: otherIssuer, reason: "id token signature"},
		{name: "expired token", tamper: zitadelop.Tamper{IDTokenLifetime: -time.Hour}, reason: "id token expired"},
		{name: "signed by a key the provider does not publish", tamper: zitadelop.Tamper{ForeignKey: true}, reason: "id token signature"},
		{name: "wrong nonce", tamper: zitadelop.Tamper{Nonce: "replayed-nonce"}, reason: "nonce mismatch"},
		{name: "wrong state", alter: func(q url.Values, s string) (url.Values, string) { q.Set("state", "forged"); return q, s }, reason: "state mismatch"},
		{name: "no state", alter: func(q url.Values, s string) (url.Values, string) { q.Del("state"); return q, s }, reason: "state mismatch"},
		{name: "flow state of another sign-in", alter: func(q url.Values, _ string) (url.Values, string) {
			_, sealed, err := f.Begin(context.Background(), "keycloak")
			if err != nil {
				t.Fatal(err)
			}
			return q, sealed
		}, reason: "state mismatch"},
		{name: "forged code", alter: func(q url.Values, s string) (url.Values, string) { q.Set("code", "guess"); return q, s }, reason: "code exchange failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.SetTamper(tc.tamper)
			defer p.SetTamper(zitadelop.Tamper{})
			sub.set(tc.substitute)
			defer sub.set("")
			authURL, sealed, err := f.Begin(context.Background(), "keycloak")
			if err != nil {
				t.Fatal(err)
			}
			q := browse(t, p, authURL, certifiedCallback)
			if tc.alter != nil {
				q, sealed = tc.alter(q, sealed)
			}
			id, err := f.Finish(context.Background(), "keycloak", q, sealed)
			if got := reason(err); got != tc.reason {
				t.Fatalf("Finish = %+v, %v; want reason %q", id, err, tc.reason)
			}
		})
	}
	// The same flows accept the provider's answer when nothing is wrong.
	authURL, sealed, err := f.Begin(context.Background(), "keycloak")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := f.Finish(context.Background(), "keycloak", browse(t, p, authURL, certifiedCallback), sealed); err != nil || id.Role != "clinician" {
		t.Fatalf("untampered sign-in: %+v, %v", id, err)
	}
}

func TestCertifiedProviderCodeIsExchangedOnce(t *testing.T) {
	p, c := startCertified(t)
	p.SetUser(zitadelop.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}})
	f := certifiedFlows(t, p, c, p.HTTPClient())
	authURL, sealed, err := f.Begin(context.Background(), "keycloak")
	if err != nil {
		t.Fatal(err)
	}
	q := browse(t, p, authURL, certifiedCallback)
	if _, err := f.Finish(context.Background(), "keycloak", q, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Finish(context.Background(), "keycloak", q, sealed); reason(err) != "code exchange failed" {
		t.Fatalf("replayed callback: %v", err)
	}
	if n := p.Exchanges(); n != 1 {
		t.Fatalf("%d codes exchanged, want 1", n)
	}
}

// issueIDToken runs a sign-in for client c at p with a plain OAuth 2.0
// client and returns the ID token p issues.
func issueIDToken(t *testing.T, p *zitadelop.Provider, c zitadelop.Client) string {
	t.Helper()
	oc := &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: c.RedirectURIs[0], Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: p.URL + "/authorize", TokenURL: p.URL + "/oauth/token"}}
	verifier := oauth2.GenerateVerifier()
	q := browse(t, p, oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), c.RedirectURIs[0])
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient())
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id token")
	}
	return raw
}

// substitutingTransport is a test double for an attacker between the site
// and the provider's token endpoint: while token is set, it replaces the
// id_token of the token endpoint's answers.
type substitutingTransport struct {
	base     http.RoundTripper
	tokenURL string

	mu    sync.Mutex
	token string
}

func (s *substitutingTransport) set(tok string) { s.mu.Lock(); s.token = tok; s.mu.Unlock() }

func (s *substitutingTransport) current() string { s.mu.Lock(); defer s.mu.Unlock(); return s.token }

func (s *substitutingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	tok := s.current()
	if err != nil || tok == "" || r.URL.String() != s.tokenURL || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	body["id_token"] = tok
	b, _ := json.Marshal(body)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}
