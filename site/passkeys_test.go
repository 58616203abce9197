package site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/internal/obs"
)

// passwordlessPasskeys plays the passkey service's passwordless half; the
// site's cookie handling and error mapping are under test, the ceremony
// itself is tested in auth.
type passwordlessPasskeys struct {
	Passkeys
	finishErr error
	gotToken  string
}

func (*passwordlessPasskeys) PasswordlessOn() bool { return true }

func (*passwordlessPasskeys) BeginPasswordless(context.Context) ([]byte, string, error) {
	return []byte(`{"publicKey":{"challenge":"AAAA"}}`), "ceremony-token", nil
}

func (p *passwordlessPasskeys) FinishPasswordless(_ context.Context, token string, _ []byte, _ auth.Client) (string, string, error) {
	p.gotToken = token
	if p.finishErr != nil {
		return "", "", p.finishErr
	}
	return "session-token", auth.StageFull, nil
}

func TestPasswordlessEndpointsKeepTheCeremonyInACookieAndAnswerStableCodes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     int
		body     string
		signedIn bool
	}{
		{"accepted", nil, http.StatusOK, `"next":"/home"`, true},
		{"refused", fmt.Errorf("verification failed: %w", auth.ErrPasskeyRefused), http.StatusUnauthorized, `"error":"refused"`, false},
		{"server failure", errors.New("database at /var/lib/secret exploded"), http.StatusInternalServerError, `"error":"internal"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := slog.New(slog.DiscardHandler)
			pk := &passwordlessPasskeys{finishErr: tt.err}
			s, err := New(Options{Log: log, Health: obs.NewHealth(log, time.Second), Metrics: obs.NewHTTPMetrics(obs.NewRegistry(), "site"),
				Passkeys: pk, Now: time.Now})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewTLSServer(s.Handler())
			defer srv.Close()
			resp, err := srv.Client().Post(srv.URL+"/signin/passkey/discover/options", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == passkeyCookie {
					cookie = c
				}
			}
			if resp.StatusCode != http.StatusOK || cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Value != "ceremony-token" {
				t.Fatalf("options = %d, cookie %+v", resp.StatusCode, cookie)
			}

			req, _ := http.NewRequest("POST", srv.URL+"/signin/passkey/discover", strings.NewReader(`{"id":"x"}`))
			req.AddCookie(&http.Cookie{Name: passkeyCookie, Value: cookie.Value})
			resp, err = srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.body) || strings.Contains(string(b), "secret") {
				t.Fatalf("finish = %d %s; want %d with %s and no internal text", resp.StatusCode, b, tt.code, tt.body)
			}
			if pk.gotToken != "ceremony-token" {
				t.Fatalf("service got ceremony token %q", pk.gotToken)
			}
			signedIn := false
			for _, c := range resp.Cookies() {
				if c.Name == sessionCookie && c.Value == "session-token" {
					signedIn = true
				}
			}
			if signedIn != tt.signedIn {
				t.Fatalf("session cookie set = %v, want %v", signedIn, tt.signedIn)
			}
		})
	}
}
