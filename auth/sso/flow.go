package sso

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// FlowTTL is how long a person has at the identity provider between the
// redirect and the return.
const FlowTTL = 10 * time.Minute

// Error is a refused sign-in. Reason is a short fixed phrase for the audit
// log and never carries content of the provider's answer; Err, for the
// process log at most, may.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "single sign-on: " + e.Reason
	}
	return "single sign-on: " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func fail(reason string, err error) error { return &Error{Reason: reason, Err: err} }

// Identity is what a verified ID token says about the person.
type Identity struct {
	Provider string
	Subject  string
	Username string
	Groups   []string
	Role     string // from the provider's group mapping; "" when none
}

// Options configure the flows.
type Options struct {
	Providers []Provider
	// SAML providers; their assertions are remembered in Ledger, which
	// they need.
	SAML   []SAMLProvider
	Ledger AssertionLedger
	// PublicURL is the site's address; callbacks are
	// <PublicURL>/signin/sso/<name>/callback.
	PublicURL *url.URL
	// Sealer seals the flow state; every signal replica behind one address
	// needs to open what another sealed (the keyring does).
	Sealer Sealer
	// HTTPClient talks to the providers (default: 10-second timeout).
	HTTPClient *http.Client
	Now        func() time.Time
}

// Flows runs sign-ins with the configured providers.
type Flows struct {
	providers map[string]*provider
	saml      map[string]*samlProvider
	labels    map[string]string
	order     []string
	ledger    AssertionLedger
	public    *url.URL
	sealer    Sealer
	client    *http.Client
	now       func() time.Time
}

type provider struct {
	cfg Provider

	mu         sync.Mutex
	op         *oidc.Provider // discovered at first use, then kept
	oauth      *oauth2.Config
	endSession string // the discovery document's end_session_endpoint, if usable
}

// New checks the providers and returns the flows. Discovery happens at the
// first sign-in with each provider, so a provider that is down does not
// stop the site from starting.
func New(o Options) (*Flows, error) {
	if o.Sealer == nil {
		return nil, errors.New("sso: a sealer is required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.SAML) > 0 && o.Ledger == nil {
		return nil, errors.New("sso: SAML providers need an assertion ledger")
	}
	f := &Flows{providers: map[string]*provider{}, saml: map[string]*samlProvider{}, labels: map[string]string{},
		public: o.PublicURL, sealer: o.Sealer, client: o.HTTPClient, now: o.Now, ledger: o.Ledger}
	for _, p := range o.Providers {
		if err := f.add(p.Name, p.Label, p.Check); err != nil {
			return nil, err
		}
		f.providers[p.Name] = &provider{cfg: p}
	}
	for _, p := range o.SAML {
		if err := f.add(p.Name, p.Label, p.Check); err != nil {
			return nil, err
		}
		sp, err := newSAMLProvider(p, f.public)
		if err != nil {
			return nil, err
		}
		f.saml[p.Name] = sp
	}
	return f, nil
}

// add checks a provider of either kind and takes its place on the page.
func (f *Flows) add(name, label string, check func() error) error {
	if err := check(); err != nil {
		return err
	}
	if f.Known(name) {
		return fmt.Errorf("provider %s: %w", name, errDuplicate)
	}
	if label == "" {
		label = name
	}
	f.labels[name] = label
	f.order = append(f.order, name)
	return nil
}

// Button is one provider on the sign-in page.
type Button struct{ Name, Label string }

// Buttons lists the providers in configured order.
func (f *Flows) Buttons() []Button {
	out := make([]Button, 0, len(f.order))
	for _, n := range f.order {
		out = append(out, Button{Name: n, Label: f.labels[n]})
	}
	return out
}

// Known reports whether name is a configured provider.
func (f *Flows) Known(name string) bool { return f.providers[name] != nil || f.saml[name] != nil }

// IsSAML reports whether name is a configured SAML provider, which returns
// by a cross-site POST to its assertion consumer service rather than a
// redirect to the callback.
func (f *Flows) IsSAML(name string) bool { return f.saml[name] != nil }

func (f *Flows) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, f.client)
}

// setup discovers the provider once; a failed discovery is tried again at
// the next sign-in.
func (f *Flows) setup(ctx context.Context, name string) (*provider, *oauth2.Config, error) {
	p, ok := f.providers[name]
	if !ok {
		return nil, nil, fail("unknown provider", nil)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op == nil {
		op, err := oidc.NewProvider(f.ctx(ctx), p.cfg.Issuer)
		if err != nil {
			return nil, nil, fail("discovery failed", err)
		}
		redirect := *f.public
		redirect.Path, redirect.RawQuery = "/signin/sso/"+name+"/callback", ""
		var extra struct {
			EndSession string `json:"end_session_endpoint"`
		}
		if op.Claims(&extra) == nil && usableURL(extra.EndSession) {
			p.endSession = extra.EndSession
		}
		p.op = op
		p.oauth = &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint(),
			RedirectURL: redirect.String(), Scopes: p.cfg.scopes()}
	}
	return p, p.oauth, nil
}

// flowState is what the sealed value carries between redirect and return.
type flowState struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v,omitempty"`
	Request  string `json:"r,omitempty"` // SAML AuthnRequest ID
	Expires  int64  `json:"e"`
}

// Begin starts a sign-in with provider name: it returns the provider's
// authorization URL to redirect to and the sealed flow state the caller
// keeps (in an HttpOnly cookie) until the return.
func (f *Flows) Begin(ctx context.Context, name string) (authURL, sealed string, err error) {
	if p, ok := f.saml[name]; ok {
		return f.beginSAML(ctx, p)
	}
	_, oc, err := f.setup(ctx, name)
	if err != nil {
		return "", "", err
	}
	st := flowState{Provider: name, State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Expires: f.now().Add(FlowTTL).Unix()}
	sealed, err = f.seal(st, sealAAD)
	if err != nil {
		return "", "", err
	}
	return oc.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)), sealed, nil
}

// Finish completes a sign-in from the provider's return to the callback:
// query is the callback's query, sealed the value Begin returned. The code
// is exchanged with the PKCE verifier and the ID token verified (issuer,
// audience, expiry, signature by the provider's published keys, nonce).
func (f *Flows) Finish(ctx context.Context, name string, query url.Values, sealed string) (Identity, error) {
	p, oc, err := f.setup(ctx, name)
	if err != nil {
		return Identity{}, err
	}
	st, err := f.open(sealed, sealAAD)
	if err != nil || st.Provider != name || f.now().Unix() > st.Expires {
		return Identity{}, fail("sign-in expired or not started here", err)
	}
	if subtle.ConstantTimeCompare([]byte(query.Get("state")), []byte(st.State)) != 1 {
		return Identity{}, fail("state mismatch", nil)
	}
	if query.Get("error") != "" {
		return Identity{}, fail("provider refused", nil)
	}
	code := query.Get("code")
	if code == "" {
		return Identity{}, fail("no code", nil)
	}
	tok, err := oc.Exchange(f.ctx(ctx), code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return Identity{}, fail("code exchange failed", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fail("no id token", nil)
	}
	idt, err := p.op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: f.now}).Verify(f.ctx(ctx), raw)
	if err != nil {
		return Identity{}, fail(verifyReason(err), err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return Identity{}, fail("nonce mismatch", nil)
	}
	return p.identity(idt)
}

// verifyReason names why an ID token was refused, from go-oidc's errors.
func verifyReason(err error) string {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return "id token expired"
	case strings.Contains(msg, "audience"):
		return "id token audience"
	case strings.Contains(msg, "issuer"), strings.Contains(msg, "different provider"):
		return "id token issuer"
	case strings.Contains(msg, "signature"):
		return "id token signature"
	default:
		return "id token invalid"
	}
}

func (p *provider) identity(idt *oidc.IDToken) (Identity, error) {
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fail("id token claims", err)
	}
	if idt.Subject == "" {
		return Identity{}, fail("no subject", nil)
	}
	username, _ := claims[p.cfg.usernameClaim()].(string)
	if username == "" {
		username, _ = claims["email"].(string)
	}
	groups := stringList(claims[p.cfg.groupsClaim()])
	return Identity{Provider: p.cfg.Name, Subject: idt.Subject, Username: username, Groups: groups, Role: p.cfg.Role(groups)}, nil
}

// stringList reads a claim that is a list of strings or a single string.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

var sealAAD = []byte("openconsult sso flow v1")

// Sealer encrypts and authenticates the flow state.
type Sealer interface {
	Seal(plain, aad []byte) ([]byte, error)
	Unseal(sealed, aad []byte) ([]byte, error)
}

// KeySealer seals with AES-256-GCM under key (32 bytes), for a single
// process.
func KeySealer(key []byte) (Sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("sso: the key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}
	return gcmSealer{aead}, nil
}

type gcmSealer struct{ aead cipher.AEAD }

func (g gcmSealer) Seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, g.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return g.aead.Seal(nonce, nonce, plain, aad), nil
}

func (g gcmSealer) Unseal(b, aad []byte) ([]byte, error) {
	n := g.aead.NonceSize()
	if len(b) < n {
		return nil, errors.New("sealed value too short")
	}
	return g.aead.Open(nil, b[:n], b[n:], aad)
}

func (f *Flows) seal(st flowState, aad []byte) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("seal flow: %w", err)
	}
	sealed, err := f.sealer.Seal(plain, aad)
	if err != nil {
		return "", fmt.Errorf("seal flow: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// maxSealed bounds what open decodes.
const maxSealed = 1024

func (f *Flows) open(sealed string, aad []byte) (flowState, error) {
	var st flowState
	if len(sealed) > maxSealed {
		return st, errors.New("flow state too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return st, errors.New("flow state unreadable")
	}
	plain, err := f.sealer.Unseal(b, aad)
	if err != nil {
		return st, errors.New("flow state not sealed by this site")
	}
	if err := json.Unmarshal(plain, &st); err != nil {
		return st, fmt.Errorf("flow state: %w", err)
	}
	return st, nil
}
