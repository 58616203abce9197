// Package zitadelop runs an OpenID provider built on the OpenID-certified
// provider package github.com/zitadel/oidc/v3/pkg/op, in-process on a
// loopback TLS port, for tests of relying parties. Discovery, the JWKS,
// authorization with PKCE, the code exchange, userinfo, introspection and
// the ID tokens are the library's; this package supplies an in-memory
// storage (clients, one user with groups, authorization requests, codes,
// an RS256 key) and a login step that signs the configured user in at once.
//
// Tests can make the provider misbehave through its storage: ID tokens
// already expired, signed by a key the JWKS does not publish, or carrying
// another nonce than the one asked for.
package zitadelop

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is who the provider signs in.
type User struct {
	Subject  string
	Username string // preferred_username (scope profile)
	Email    string // email (scope email)
	Groups   []string
}

// Tamper makes the provider issue wrong ID tokens until it is reset.
type Tamper struct {
	// IDTokenLifetime replaces the clients' ID token lifetime; a negative
	// one issues tokens that expired before they were issued.
	IDTokenLifetime time.Duration
	// ForeignKey signs with a key the JWKS does not publish (under the
	// published key's id).
	ForeignKey bool
	// Nonce puts another nonce in the ID token than the request asked for.
	Nonce string
}

// Client is a relying party registered at the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Provider is a running OpenID provider.
type Provider struct {
	// URL is the issuer: https://127.0.0.1:port.
	URL   string
	srv   *httptest.Server
	store *storage
}

// Start runs a provider with the given clients until the test ends.
func Start(t testing.TB, clients ...Client) *Provider {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	p := &Provider{URL: srv.URL, srv: srv, store: &storage{
		key: signingKey{id: "k1", key: newKey(t)}, foreign: signingKey{id: "k1", key: newKey(t)},
		clients: map[string]*client{}, requests: map[string]*authRequest{}, codes: map[string]string{}, tokens: map[string]accessToken{},
	}}
	for _, c := range clients {
		p.AddClient(c)
	}
	var crypto [32]byte
	_, _ = rand.Read(crypto[:])
	provider, err := op.NewProvider(&op.Config{CryptoKey: crypto, CodeMethodS256: true}, p.store, op.StaticIssuer(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("GET /login", p.login(provider))
	mux.Handle("/", provider)
	return p
}

func newKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// AddClient registers a relying party.
func (p *Provider) AddClient(c Client) {
	s := p.store
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &client{id: c.ID, secret: c.Secret, redirects: append([]string(nil), c.RedirectURIs...), idTokenLifetime: 5 * time.Minute,
		loginURL: func(id string) string { return p.URL + "/login?id=" + url.QueryEscape(id) }}
}

// SetUser chooses who the next sign-in signs in.
func (p *Provider) SetUser(u User) { p.store.mu.Lock(); p.store.user = u; p.store.mu.Unlock() }

// SetTamper changes how the next ID tokens are made.
func (p *Provider) SetTamper(t Tamper) { p.store.mu.Lock(); p.store.tamper = t; p.store.mu.Unlock() }

// Exchanges returns how many codes were exchanged for tokens.
func (p *Provider) Exchanges() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.issued
}

// HTTPClient trusts the provider's certificate, as a relying party's
// client must.
func (p *Provider) HTTPClient() *http.Client {
	c := p.srv.Client()
	c.Timeout = 10 * time.Second
	return c
}

// Close stops the provider, as when it is down.
func (p *Provider) Close() { p.srv.Close() }

// login is the provider's sign-in step: it signs the configured user in
// for the authorization request and returns to the library's callback,
// which issues the code.
func (p *Provider) login(provider *op.Provider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if err := p.store.signIn(id); err != nil {
			http.Error(w, "unknown or finished sign-in", http.StatusBadRequest)
			return
		}
		ctx := op.ContextWithIssuer(r.Context(), p.URL)
		http.Redirect(w, r, op.AuthCallbackURL(provider)(ctx, id), http.StatusFound)
	}
}

// compile-time checks of the interfaces the library looks for.
var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
	_ op.Client                    = (*client)(nil)
)
