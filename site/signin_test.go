package site

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/internal/obs"
)

// saturatedAccounts answers every sign-in as the account service does when
// every password-hashing slot stayed taken; the site's mapping is under
// test, the bound itself is tested in auth.
type saturatedAccounts struct{ Accounts }

func (saturatedAccounts) SignIn(context.Context, string, string, auth.Client) (string, string, error) {
	return "", "", auth.ErrBusy
}

func TestSignInWhileHashingIsSaturatedIs503WithRetryAfter(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	s, err := New(Options{Log: log, Health: obs.NewHealth(log, time.Second), Metrics: obs.NewHTTPMetrics(obs.NewRegistry(), "site"),
		Accounts: saturatedAccounts{}, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(s.Handler())
	defer srv.Close()
	resp, err := srv.Client().PostForm(srv.URL+"/signin", url.Values{"username": {"dr.who"}, "password": {"a password guess"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("sign-in while busy = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	b, _ := io.ReadAll(resp.Body)
	if body := string(b); strings.Contains(body, auth.ErrBusy.Error()) || !strings.Contains(body, "try again") {
		t.Fatalf("busy page does not ask to try again, or shows internal text:\n%s", body)
	}
}
