package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// TestBrowserSignsInWithOIDC drives Chromium from the sign-in page's button
// through the provider's page (another site: 127.0.0.1 against localhost)
// and back, then signs out through the provider's end-session endpoint. The return starts on the provider's site, so it proves the Lax
// flow cookie comes back on it and the Strict session cookie is sent once
// the page moves on.
func TestBrowserSignsInWithOIDC(t *testing.T) {
	d, op := startWithOIDC(t)
	op.SetInteractive(true)
	if !strings.HasPrefix(d.public, "https://localhost:") {
		t.Fatalf("public URL %s: the provider must be on another site", d.public)
	}
	ctx, cancel := context.WithTimeout(browsertest.New(t), 30*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(d.public+"/signin"),
		chromedp.Click(chromedp.CSS(`a[href="/signin/sso/keycloak"]`)),
		chromedp.Click(chromedp.CSS(`#approve`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/consults"]`)),
	)
	if err != nil {
		t.Fatalf("sign in through the provider: %v", err)
	}
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || url != d.public+"/consults" {
		t.Fatalf("ended at %s: %v", url, err)
	}

	// Signing out ends the provider's session too, and the browser comes
	// back to the sign-in page: the content policy's form-action does not
	// stop the way out through the provider.
	err = chromedp.Do(ctx,
		chromedp.Navigate(d.public+"/account"),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/signin/sso/keycloak"]`)),
	)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if url, err := chromedp.Run(ctx, chromedp.Location()); err != nil || url != d.public+"/signin" {
		t.Fatalf("signed out to %s: %v", url, err)
	}
	if got := op.Logouts(); len(got) != 1 || got[0] != d.public+"/signin" {
		t.Fatalf("provider logouts %q", got)
	}
}

// TestBrowserSignsInWithSAML drives Chromium from the sign-in page's button
// through the identity provider's sign-in form (another site) and its
// self-submitting form back to the assertion consumer service. That POST
// is cross-site: it proves the SameSite=None flow cookie comes back on it,
// the cross-origin protection lets that one route through, and the Strict
// session cookie set in its answer is sent once the page moves on.
func TestBrowserSignsInWithSAML(t *testing.T) {
	d, idp := startWithSAML(t)
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "clinicians")
	if !strings.HasPrefix(d.public, "https://localhost:") || !strings.HasPrefix(idp.URL, "http://127.0.0.1:") {
		t.Fatalf("public URL %s, provider %s: the provider must be on another site", d.public, idp.URL)
	}
	ctx, cancel := context.WithTimeout(browsertest.New(t), 30*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(d.public+"/signin"),
		chromedp.Click(chromedp.CSS(`a[href="/signin/sso/adfs"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="user"]`), "jdoe"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "idp password"),
		chromedp.Click(chromedp.CSS(`input[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/consults"]`)),
	)
	if err != nil {
		t.Fatalf("sign in through the identity provider: %v", err)
	}
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || url != d.public+"/consults" {
		t.Fatalf("ended at %s: %v", url, err)
	}
}
