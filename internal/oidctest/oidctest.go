// Package oidctest runs a small but real OpenID Connect provider on a
// loopback port for tests: discovery document, JWKS, an authorization
// endpoint that signs in a configured user at once, and a token endpoint
// that checks the client secret, the redirect URI and the PKCE verifier and
// issues RS256-signed ID tokens. Tests can make it misbehave (wrong
// audience, expired token, foreign signing key, wrong nonce) to prove the
// relying party refuses.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// User is who the provider signs in.
type User struct {
	Subject  string
	Username string
	Groups   []string
}

// Tamper makes the next ID tokens wrong in one way.
type Tamper struct {
	Audience   string // aud other than the client id
	Expired    bool   // exp in the past
	ForeignKey bool   // signed by a key the JWKS does not publish
	Nonce      string // nonce other than the one asked for
	Issuer     string // iss other than the provider's
}

// Provider is a running OpenID provider.
type Provider struct {
	URL          string
	ClientID     string
	ClientSecret string

	srv     *httptest.Server
	key     *rsa.PrivateKey
	foreign *rsa.PrivateKey

	mu     sync.Mutex
	user   User
	tamper Tamper
	codes  map[string]grant
	// interactive: authorize shows a page whose link the person follows,
	// as at a real provider's sign-in form, instead of returning at once.
	interactive bool
	pending     map[string]string // login id -> return URL
	// Exchanges counts successful code exchanges.
	exchanges int
	logouts   []string
}

type grant struct {
	user      User
	nonce     string
	challenge string
	redirect  string
}

// Start runs a provider until the test ends.
func Start(t testing.TB, clientID, clientSecret string) *Provider {
	t.Helper()
	p := &Provider{ClientID: clientID, ClientSecret: clientSecret, key: newKey(t), foreign: newKey(t), codes: map[string]grant{}, pending: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /login/{id}", p.login)
	mux.HandleFunc("GET /logout", p.logout)
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

func newKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// SetUser chooses who the next authorization signs in.
func (p *Provider) SetUser(u User) { p.mu.Lock(); p.user = u; p.mu.Unlock() }

// SetInteractive makes the authorization endpoint show a page with a
// link the person follows (a navigation started on the provider's site)
// rather than return to the client at once.
func (p *Provider) SetInteractive(on bool) { p.mu.Lock(); p.interactive = on; p.mu.Unlock() }

// SetTamper changes how the next ID tokens are made.
func (p *Provider) SetTamper(t Tamper) { p.mu.Lock(); p.tamper = t; p.mu.Unlock() }

// Close stops the provider, as when it is down.
func (p *Provider) Close() { p.srv.Close() }

// Exchanges returns how many codes were exchanged for tokens.
func (p *Provider) Exchanges() int { p.mu.Lock(); defer p.mu.Unlock(); return p.exchanges }

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL,
		"authorization_endpoint":                p.URL + "/authorize",
		"token_endpoint":                        p.URL + "/token",
		"jwks_uri":                              p.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"end_session_endpoint":                  p.URL + "/logout",
	})
}

// logout is the end-session endpoint (RP-initiated logout): it ends the
// person's session here and returns to the client's post-logout address.
func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back := q.Get("post_logout_redirect_uri")
	if q.Get("client_id") != p.ClientID || back == "" {
		http.Error(w, "invalid_request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.logouts = append(p.logouts, back)
	p.mu.Unlock()
	http.Redirect(w, r, back, http.StatusFound)
}

// Logouts lists the post-logout addresses of the logouts so far.
func (p *Provider) Logouts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logouts...)
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

// authorize signs the configured user in at once and returns to the client.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "invalid_request", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		http.Error(w, "invalid redirect_uri", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = grant{user: p.user, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: redirect.String()}
	p.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	p.mu.Lock()
	interactive := p.interactive
	login := rand.Text()
	p.pending[login] = redirect.String()
	p.mu.Unlock()
	if interactive {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Provider</title><a id="approve" href="/login/` + login + `">Continue</a>`))
		return
	}
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// login returns from the interactive page to the client.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	back, ok := p.pending[r.PathValue("id")]
	delete(p.pending, r.PathValue("id"))
	p.mu.Unlock()
	if !ok {
		http.Error(w, "unknown login", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, back, http.StatusFound)
}

// token exchanges a code once, for the client that holds the secret and
// the PKCE verifier.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	g, found := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	tamper := p.tamper
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !found || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("redirect_uri") != g.redirect ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	idToken, err := p.idToken(g, tamper)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	p.mu.Lock()
	p.exchanges++
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 300, "id_token": idToken})
}

func (p *Provider) idToken(g grant, t Tamper) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": p.URL, "sub": g.user.Subject, "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"nonce": g.nonce, "preferred_username": g.user.Username, "groups": g.user.Groups,
	}
	if t.Audience != "" {
		claims["aud"] = t.Audience
	}
	if t.Expired {
		claims["iat"], claims["exp"] = now.Add(-time.Hour).Unix(), now.Add(-30*time.Minute).Unix()
	}
	if t.Nonce != "" {
		claims["nonce"] = t.Nonce
	}
	if t.Issuer != "" {
		claims["iss"] = t.Issuer
	}
	key := p.key
	if t.ForeignKey {
		key = p.foreign
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
