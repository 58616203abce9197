package main

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// createFirstAdmin completes the setup link over HTTP, as the operator would.
func createFirstAdmin(t *testing.T, d *devServer, username, password string) {
	t.Helper()
	m := regexp.MustCompile(`https://\S+/setup/\S+`).FindString(d.stdout.String())
	if m == "" {
		t.Fatal("no setup link printed")
	}
	form := url.Values{"username": {username}, "password": {password}, "confirm": {password}}
	if resp, body := d.do(t, "POST", m, form, d.public); resp.StatusCode != 200 {
		t.Fatalf("setup = %d: %s", resp.StatusCode, body)
	}
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestBrowserEnrollsTOTPAndSignsInWithCode drives Chromium through the first
// sign-in of the administrator: password, second-factor enrollment by
// reading the key off the page, recovery codes, then a second sign-in with a
// freshly computed code.
func TestBrowserEnrollsTOTPAndSignsInWithCode(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	ctx := browsertest.New(t)

	signIn := func() {
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
	signIn()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#totp-secret"))); err != nil {
		t.Fatalf("enrollment page: %v", err)
	}
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil || len(strings.TrimSpace(secret)) < 16 {
		t.Fatalf("secret %q: %v", secret, err)
	}
	secret = strings.TrimSpace(secret)
	var qr bool
	for deadline := time.Now().Add(10 * time.Second); !qr && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		qr, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const i = document.querySelector("img.qr"); return i.complete && i.naturalWidth > 0; })()`))
		if err != nil {
			t.Fatal(err)
		}
	}
	if !qr {
		t.Fatal("QR code not rendered")
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, secret, time.Now())),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
	)
	if err != nil {
		t.Fatalf("confirm enrollment: %v", err)
	}
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#recovery-codes li").length`))
	if err != nil || codes != 10 {
		t.Fatalf("%d recovery codes shown: %v", codes, err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("a.button")),
		chromedp.WaitVisible(chromedp.CSS("#account-username")),
		chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	)
	if err != nil {
		t.Fatalf("account page and sign-out: %v", err)
	}

	// Second sign-in: the enrollment code's time step is spent, so wait for
	// the next step before computing the code.
	signIn()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`form[action="/signin/code"]`))); err != nil {
		t.Fatalf("code page: %v", err)
	}
	next := time.Now().Truncate(30 * time.Second).Add(30 * time.Second)
	time.Sleep(time.Until(next) + 200*time.Millisecond)
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, secret, time.Now())),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#account-username")),
	)
	if err != nil {
		t.Fatalf("sign in with code: %v", err)
	}
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#account-username")))
	if err != nil || name != "chief.admin" {
		t.Fatalf("account page shows %q: %v", name, err)
	}
}
