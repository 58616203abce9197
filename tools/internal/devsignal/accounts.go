package devsignal

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// The accounts a run creates in its throw-away data directory.
const (
	adminName     = "load.admin"
	clinicianName = "load.clinician"
	loadPassword  = "a long load-test passphrase"
)

var (
	totpSecretPattern = regexp.MustCompile(`id="totp-secret"[^>]*>([A-Z2-7]+)<`)
	activatePattern   = regexp.MustCompile(`/activate/([A-Za-z0-9_-]+)`)
	linkPattern       = regexp.MustCompile(`class="link-url" readonly value="([^"]+)"`)
	consultPath       = regexp.MustCompile(`^/consults/([^/]+)$`)
	titlePattern      = regexp.MustCompile(`<h1[^>]*>([^<]*)</h1>`)
)

// postForm posts form and returns the response with its body read.
func postForm(ctx context.Context, c *http.Client, u string, form url.Values, origin string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("POST %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("POST %s: %w", req.URL.Path, err)
	}
	return resp, string(b), nil
}

func totpCode(secret string) (string, error) {
	return totp.GenerateCodeCustom(secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// ClinicianSession creates the first administrator through the one-time
// setup link, has it create a clinician, activates that account with the
// link from the outbox and signs the clinician in, enrolling TOTP on the
// way, exactly as people do in a browser. It returns the clinician's
// cookie-keeping client.
func (s *Proc) ClinicianSession(ctx context.Context) (*http.Client, error) {
	link := setupPattern.FindString(s.stdout.String())
	if link == "" {
		return nil, fmt.Errorf("no setup link printed:\n%s", Tail(s.stdout.String()))
	}
	form := url.Values{"username": {adminName}, "password": {loadPassword}, "confirm": {loadPassword}}
	if resp, body, err := postForm(ctx, s.Client(nil, nil, false), link, form, s.Public.String()); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("first administrator: %w", httpFailure(resp, body, err))
	}
	admin, err := s.signIn(ctx, adminName)
	if err != nil {
		return nil, fmt.Errorf("administrator sign-in: %w", err)
	}
	form = url.Values{"username": {clinicianName}, "email": {clinicianName + "@example-hospital.org"}, "role": {"clinician"}}
	if resp, body, err := postForm(ctx, admin, s.Public.JoinPath("/admin/users").String(), form, ""); err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(body, "created") {
		return nil, fmt.Errorf("create clinician: %w", httpFailure(resp, body, err))
	}
	token, err := s.activationToken(clinicianName)
	if err != nil {
		return nil, err
	}
	form = url.Values{"password": {loadPassword}, "confirm": {loadPassword}}
	if resp, body, err := postForm(ctx, s.Client(nil, nil, false), s.Public.JoinPath("/activate", token).String(), form, ""); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("activate clinician: %w", httpFailure(resp, body, err))
	}
	c, err := s.signIn(ctx, clinicianName)
	if err != nil {
		return nil, fmt.Errorf("clinician sign-in: %w", err)
	}
	return c, nil
}

// signIn signs a new account in and enrolls its second factor.
func (s *Proc) signIn(ctx context.Context, username string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := s.Client(nil, jar, true)
	resp, body, err := postForm(ctx, c, s.Public.JoinPath("/signin").String(), url.Values{"username": {username}, "password": {loadPassword}}, "")
	if err != nil {
		return nil, err
	}
	m := totpSecretPattern.FindStringSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("no second-factor enrollment after the password: %w", httpFailure(resp, body, nil))
	}
	code, err := totpCode(m[1])
	if err != nil {
		return nil, fmt.Errorf("TOTP code: %w", err)
	}
	resp, body, err = postForm(ctx, c, s.Public.JoinPath("/account/totp").String(), url.Values{"code": {code}}, "")
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(body, "recovery-codes") {
		return nil, fmt.Errorf("enrollment: %w", httpFailure(resp, body, err))
	}
	return c, nil
}

// activationToken reads the activation link mailed to username from the
// development outbox.
func (s *Proc) activationToken(username string) (string, error) {
	dir := filepath.Join(s.dataDir, "outbox")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("outbox: %w", err)
		}
		if m := activatePattern.FindSubmatch(b); m != nil && strings.Contains(string(b), username) {
			return string(m[1]), nil
		}
	}
	return "", fmt.Errorf("no activation message for %s in the outbox", username)
}

// Consult is one consult a run created: its id and patient link, which
// every guest of the run's room redeems (a link admits many guests, each
// of whom the clinician admits).
type Consult struct {
	ID, Link string
}

// CreateConsult starts a consult as the clinician's dashboard does.
func (s *Proc) CreateConsult(ctx context.Context, clinician *http.Client, title string) (Consult, error) {
	resp, body, err := postForm(ctx, clinician, s.Public.JoinPath("/consults").String(), url.Values{"title": {title}}, "")
	if err != nil || resp.StatusCode != http.StatusOK {
		return Consult{}, fmt.Errorf("create consult: %w", httpFailure(resp, body, err))
	}
	m := consultPath.FindStringSubmatch(resp.Request.URL.Path)
	l := linkPattern.FindStringSubmatch(body)
	if m == nil || l == nil {
		return Consult{}, fmt.Errorf("create consult: no consult page with a patient link at %s", resp.Request.URL.Path)
	}
	return Consult{ID: m[1], Link: html.UnescapeString(l[1])}, nil
}

// guestCookie is the consult-scoped session the join page sets.
const guestCookie = "__Host-oc_guest"

// JoinAsGuest redeems a consult link with a display name from its own
// source address and returns the guest's session cookie.
func (s *Proc) JoinAsGuest(ctx context.Context, link, name string, source int) (*http.Cookie, error) {
	c := s.Client(GuestSource(source), nil, false)
	defer c.CloseIdleConnections()
	resp, body, err := postForm(ctx, c, link, url.Values{"name": {name}}, "")
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("join link: %w", httpFailure(resp, body, err))
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == guestCookie {
			return ck, nil
		}
	}
	return nil, fmt.Errorf("join link: no %s cookie", guestCookie)
}

// httpFailure describes an unexpected answer without dumping a page.
func httpFailure(resp *http.Response, body string, err error) error {
	if err != nil {
		return err
	}
	if resp == nil {
		return errors.New("no response")
	}
	title := titlePattern.FindStringSubmatch(body)
	if title != nil {
		return fmt.Errorf("%s %s: %s", resp.Request.URL.Path, resp.Status, strings.TrimSpace(title[1]))
	}
	return fmt.Errorf("%s %s", resp.Request.URL.Path, resp.Status)
}
