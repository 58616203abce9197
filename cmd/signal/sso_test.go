package main

import (
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/internal/oidctest"
)

// ssoSignIn walks a browser through the provider and returns the
// callback's answer.
func ssoSignIn(t *testing.T, d *devServer, c *http.Client) *http.Response {
	t.Helper()
	resp, _ := get(t, c, d.public+"/signin/sso/keycloak")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("begin = %d", resp.StatusCode)
	}
	resp, _ = get(t, c, resp.Header.Get("Location"))
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(callback, d.public+"/signin/sso/keycloak/callback?") {
		t.Fatalf("provider = %d, back to %q", resp.StatusCode, callback)
	}
	resp, _ = get(t, c, callback)
	return resp
}

// startWithOIDC runs signal with one provider, started on loopback, whose
// group /clinicians maps to clinician.
func startWithOIDC(t *testing.T) (*devServer, *oidctest.Provider) {
	t.Helper()
	op := oidctest.Start(t, "openconsult", "kc-secret-for-signal")
	op.SetUser(oidctest.User{Subject: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", Username: "jane.doe", Groups: []string{"/staff", "/clinicians"}})
	dir := t.TempDir()
	secret := filepath.Join(dir, "kc.secret")
	conf := filepath.Join(dir, "oidc.toml")
	if err := os.WriteFile(secret, []byte(op.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(`[[provider]]
name = "keycloak"
label = "Sign in with the hospital account"
issuer = "`+op.URL+`"
client_id = "openconsult"
client_secret_file = "`+secret+`"
[provider.roles]
"/clinicians" = "clinician"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, filepath.Join(dir, "data"), "-oidc-providers", conf)
	t.Cleanup(func() { d.stop() })
	return d, op
}

func TestOIDCSignInCreatesTheAccountAndLaterDisablesIt(t *testing.T) {
	d, op := startWithOIDC(t)
	c := *d.client
	c.Jar, _ = cookiejar.New(nil)
	if _, page := get(t, &c, d.public+"/signin"); !strings.Contains(page, "Sign in with the hospital account") {
		t.Fatal("no provider button on the sign-in page")
	}
	resp := ssoSignIn(t, d, &c)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Refresh") != "0; url=/home" {
		t.Fatalf("callback = %d", resp.StatusCode)
	}
	// A full session at once: the provider answered for both factors.
	if resp, _ := get(t, &c, d.public+"/home"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/consults" {
		t.Fatalf("home = %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, &c, d.public+"/consults"); resp.StatusCode != http.StatusOK {
		t.Fatalf("consults = %d", resp.StatusCode)
	}

	// Out of the mapped group: the next sign-in disables the account and
	// its open session ends.
	op.SetUser(oidctest.User{Subject: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", Username: "jane.doe", Groups: []string{"/staff"}})
	other := *d.client
	other.Jar, _ = cookiejar.New(nil)
	if resp := ssoSignIn(t, d, &other); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unmapped sign-in = %d", resp.StatusCode)
	}
	if resp, _ := get(t, &c, d.public+"/consults"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("disabled account's session: %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Neither the client secret nor any token or code reaches the log.
	log := d.stderr.String() + d.stdout.String()
	for _, secret := range []string{op.ClientSecret, "eyJ", "code="} {
		if strings.Contains(log, secret) {
			t.Fatalf("log contains %q", secret)
		}
	}
	for _, want := range []string{`"provider":"keycloak"`} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %s", want)
		}
	}
}
