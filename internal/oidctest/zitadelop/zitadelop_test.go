package zitadelop_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/openconsult/openconsult/internal/oidctest/zitadelop"
)

const redirect = "https://rp.example-hospital.org/cb"

func start(t *testing.T) (*zitadelop.Provider, *oauth2.Config) {
	t.Helper()
	c := zitadelop.Client{ID: "rp", Secret: "rp-secret", RedirectURIs: []string{redirect}}
	p := zitadelop.Start(t, c)
	p.SetUser(zitadelop.User{Subject: "u1", Username: "jdoe", Groups: []string{"clinicians"}})
	return p, &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: redirect, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: p.URL + "/authorize", TokenURL: p.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// authorize follows authURL through the provider and returns where the
// provider finally sends the browser (or its error status).
func authorize(t *testing.T, p *zitadelop.Provider, authURL string) (int, *url.URL) {
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
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp.StatusCode, loc
}

func TestDiscoveryAdvertisesCodeFlowWithPKCE(t *testing.T) {
	p, _ := start(t)
	resp, err := p.HTTPClient().Get(p.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer     string   `json:"issuer"`
		JWKS       string   `json:"jwks_uri"`
		Challenges []string `json:"code_challenge_methods_supported"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != p.URL || doc.JWKS == "" || len(doc.Challenges) == 0 || doc.Challenges[0] != "S256" || len(doc.Algs) != 1 || doc.Algs[0] != "RS256" {
		t.Fatalf("discovery: %+v", doc)
	}
}

func TestExchangeChecksClientAndVerifier(t *testing.T) {
	cases := []struct {
		name     string
		secret   string
		verifier func(good string) string
		ok       bool
	}{
		{name: "right secret and verifier", ok: true},
		{name: "wrong secret", secret: "guess"},
		{name: "wrong verifier", verifier: func(string) string { return oauth2.GenerateVerifier() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, oc := start(t)
			verifier := oauth2.GenerateVerifier()
			status, loc := authorize(t, p, oc.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
			if status != http.StatusFound || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
				t.Fatalf("authorize: %d %v", status, loc)
			}
			if tc.secret != "" {
				oc.ClientSecret = tc.secret
			}
			if tc.verifier != nil {
				verifier = tc.verifier(verifier)
			}
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient())
			tok, err := oc.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
			if (err == nil) != tc.ok {
				t.Fatalf("exchange: %v", err)
			}
			if tc.ok && tok.Extra("id_token") == nil {
				t.Fatal("no id token")
			}
		})
	}
}

func TestAuthorizeRefusesUnregisteredRedirect(t *testing.T) {
	p, oc := start(t)
	oc.RedirectURL = "https://attacker.example/cb"
	status, loc := authorize(t, p, oc.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if loc != nil && loc.Host == "attacker.example" {
		t.Fatalf("provider redirected to an unregistered address: %d %v", status, loc)
	}
	if status == http.StatusFound {
		t.Fatalf("authorize = %d %v, want an error page", status, loc)
	}
}
