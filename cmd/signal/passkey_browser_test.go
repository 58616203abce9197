package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// TestBrowserPasskeyReplacesTheCode drives Chromium with a virtual platform
// authenticator (CTAP2, internal transport, resident keys, user
// verification): the administrator registers a passkey on the account page,
// signs in again with the password and the passkey instead of a code (which
// is refused, passkeys being required for administrators), then
// with the passkey alone (passwordless), and removes the passkey; one
// registered again is removed from the users page; after that neither
// sign-in page offers one that works.
func TestBrowserPasskeyReplacesTheCode(t *testing.T) {
	d := startDev(t, t.TempDir(), "-passkey-passwordless", "-passkey-required-for-admins")
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	ctx := browsertest.New(t)

	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	authn, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}

	password := func() {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Navigate(d.public+"/signin"),
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), "chief.admin"),
			chromedp.SendKeys(chromedp.CSS("#password"), "a long admin passphrase"),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		)
		if err != nil {
			t.Fatalf("sign in: %v", err)
		}
	}
	// First sign-in enrolls TOTP, as the policy requires.
	password()
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil {
		t.Fatalf("enrollment page: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, strings.TrimSpace(secret), time.Now())),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
		// Passkeys are required for administrators: administration waits.
		chromedp.Navigate(d.public+"/admin/users"),
		chromedp.WaitVisible(chromedp.CSS("#passkey-none")),
		chromedp.SendKeys(chromedp.CSS("#passkey-name"), "Virtual key"),
		chromedp.Click(chromedp.CSS(`#passkey-register button`)),
		chromedp.WaitVisible(chromedp.CSS("#passkey-list")),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-status")))
		t.Fatalf("register passkey: %v (status %q)", err, status)
	}
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-list tbody th")))
	if err != nil || name != "Virtual key" {
		t.Fatalf("listed passkey %q: %v", name, err)
	}
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(authn))
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential {
		t.Fatalf("authenticator holds %+v: %v", creds, err)
	}

	// Sign out, then the password and the passkey instead of a code.
	err = chromedp.Do(ctx,
		chromedp.Navigate(d.public+"/account"),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	password()
	// A code is refused now that the administrator has a passkey.
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#passkey-signin")),
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, strings.TrimSpace(secret), time.Now())),
		chromedp.Click(chromedp.CSS(`form[action="/signin/code"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#form-error")),
	)
	if err != nil {
		t.Fatalf("code page: %v", err)
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#form-error"))); err != nil || !strings.Contains(msg, "passkey") {
		t.Fatalf("code refusal says %q: %v", msg, err)
	}
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#passkey-signin")),
		chromedp.Click(chromedp.CSS("#passkey-signin")),
		chromedp.WaitVisible(chromedp.CSS("#account-username")),
		chromedp.Navigate(d.public+"/admin/users"),
		chromedp.WaitVisible(chromedp.CSS("#new-user")),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-status")))
		t.Fatalf("sign in with passkey and administer: %v (status %q)", err, status)
	}
	if last, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/account/passkeys").then(r => r.text())`, chromedp.EvalAwaitPromise)); err != nil || strings.Contains(last, ">Never<") {
		t.Fatalf("passkey not marked used after sign-in: %v", err)
	}

	// Passwordless: the discoverable passkey alone, from the sign-in page.
	signOut := func() {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Navigate(d.public+"/account"),
			chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#username")),
		)
		if err != nil {
			t.Fatalf("sign out: %v", err)
		}
	}
	signOut()
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#passkey-passwordless")),
		chromedp.WaitVisible(chromedp.CSS("#account-username")),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-status")))
		t.Fatalf("passwordless sign-in: %v (status %q)", err, status)
	}

	// Removal: the list is empty and the code page offers no passkey.
	err = chromedp.Do(ctx,
		chromedp.Navigate(d.public+"/account/passkeys"),
		chromedp.Click(chromedp.CSS(`form[action$="/remove"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#passkey-none")),
	)
	if err != nil {
		t.Fatalf("remove passkey: %v", err)
	}

	// Registered again, then removed by an administrator from the users
	// page (here their own account): the rule sends them back to register.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#passkey-name"), "Again"),
		chromedp.Click(chromedp.CSS(`#passkey-register button`)),
		chromedp.WaitVisible(chromedp.CSS("#passkey-list")),
		chromedp.Navigate(d.public+"/admin/users"),
		chromedp.Click(chromedp.CSS(`form[action$="/passkeys/remove"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-status")))
		t.Fatalf("administrator removes passkeys: %v (status %q)", err, status)
	}
	if notice, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.notice`))); !strings.Contains(notice, "passkeys are removed") {
		t.Fatalf("users page says %q", notice)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(d.public+"/admin/users"), chromedp.WaitVisible(chromedp.CSS("#passkey-none"))); err != nil {
		t.Fatalf("administration without a passkey: %v", err)
	}
	signOut()
	// The authenticator still holds the credential; the server refuses it.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#passkey-passwordless")),
		chromedp.WaitVisible(chromedp.CSS("#passkey-status.error")),
	)
	if err != nil {
		t.Fatalf("removed passkey: %v", err)
	}
	if status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#passkey-status"))); err != nil || !strings.Contains(status, "not accepted") {
		t.Fatalf("status after removed passkey %q: %v", status, err)
	}
	password()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`form[action="/signin/code"]`))); err != nil {
		t.Fatalf("code page: %v", err)
	}
	offered, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#passkey-signin") !== null`))
	if err != nil || offered {
		t.Fatalf("code page still offers a passkey (%v): %v", offered, err)
	}
}

// TestSiteAtAnIPAddressRunsWithoutPasskeys: WebAuthn binds passkeys to a
// domain name, so a site reached at an IP address starts without them
// (it used to refuse to start at all), and a passkey option there is
// refused with a message naming the cause.
func TestSiteAtAnIPAddressRunsWithoutPasskeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-dev", "-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-http-listen", "off", "-admin-listen", "off",
		"-relay-listen", "off", "-relay-tls-listen", "off", "-sfu-embedded=false", "-public-url", "https://192.0.2.10", "-passkey-passwordless"}
	err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-public-url") || !strings.Contains(err.Error(), "need a domain name") {
		t.Fatalf("passkey option on a site at an IP address: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := startDev(t, t.TempDir(), "-listen", addr, "-public-url", "https://"+addr)
	defer d.stop()
	if !strings.Contains(d.stderr.String(), "passkeys off") {
		t.Error("no warning that passkeys are off")
	}
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	resp, err := admin.Get(d.public + "/account")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "/account/passkeys") {
		t.Fatalf("account page = %d, links to passkeys: %v", resp.StatusCode, strings.Contains(string(body), "/account/passkeys"))
	}
}
