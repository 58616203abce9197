// Package samltest runs a SAML 2.0 identity provider (crewjam/saml's
// samlidp) on a loopback port for tests: metadata, the single sign-on
// service with a user name and password form, and the HTTP-POST answer to
// the service provider's assertion consumer service. Assertions are signed
// by the provider's key; tests can alter an assertion before it is signed
// (wrong audience, expired) or strip the signatures afterwards, to prove
// the service provider refuses.
package samltest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"golang.org/x/crypto/bcrypt"
)

// IdP is a running identity provider.
type IdP struct {
	URL         string // base address
	MetadataURL string

	srv *samlidp.Server
	hs  *httptest.Server

	mu     sync.Mutex
	alter  func(*saml.Assertion)
	client *http.Client
	signer *switchSigner
}

// SignWithForeignKey makes the provider sign with a key its metadata does
// not publish (as an impostor would), or again with its own.
func (p *IdP) SignWithForeignKey(on bool) { p.signer.use(on) }

// switchSigner signs with the provider's key or, when switched, another.
type switchSigner struct {
	key, foreign *rsa.PrivateKey
	mu           sync.Mutex
	useForeign   bool
}

func (s *switchSigner) use(foreign bool) { s.mu.Lock(); s.useForeign = foreign; s.mu.Unlock() }

func (s *switchSigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *switchSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	k := s.key
	if s.useForeign {
		k = s.foreign
	}
	s.mu.Unlock()
	return k.Sign(r, digest, opts)
}

func foreignKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Start runs an identity provider until the test ends.
func Start(t testing.TB) *IdP {
	t.Helper()
	key, cert := keyPair(t)
	p := &IdP{client: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	var h http.Handler
	p.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(p.hs.Close)
	base, _ := url.Parse(p.hs.URL)
	p.signer = &switchSigner{key: key, foreign: foreignKey(t)}
	srv, err := samlidp.New(samlidp.Options{URL: *base, Key: key, Signer: p.signer, Certificate: cert, Store: &samlidp.MemoryStore{}, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	srv.IDP.AssertionMaker = alteringMaker{p}
	srv.InitializeHTTP()
	h = srv
	p.srv, p.URL, p.MetadataURL = srv, p.hs.URL, p.hs.URL+"/metadata"
	return p
}

// Close stops the provider (as when it is down).
func (p *IdP) Close() { p.hs.Close() }

// SetUser adds or replaces the user name with password, email (the
// NameID) and groups (sent as the eduPersonAffiliation attribute).
func (p *IdP) SetUser(t testing.TB, name, password, email string, groups ...string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u := samlidp.User{Name: name, HashedPassword: hash, Email: email, Groups: groups}
	if err := p.srv.Store.Put("/users/"+name, &u); err != nil {
		t.Fatal(err)
	}
}

// Register adds a service provider by its metadata, as an administrator
// of the identity provider does.
func (p *IdP) Register(t testing.TB, id string, metadata []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, p.URL+"/services/"+id, bytes.NewReader(metadata))
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("register service provider: %d", resp.StatusCode)
	}
}

// Alter changes every following assertion before the provider signs it;
// nil stops.
func (p *IdP) Alter(fn func(*saml.Assertion)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.alter = fn
}

type alteringMaker struct{ p *IdP }

func (m alteringMaker) MakeAssertion(req *saml.IdpAuthnRequest, s *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, s); err != nil {
		return err
	}
	m.p.mu.Lock()
	fn := m.p.alter
	m.p.mu.Unlock()
	if fn != nil {
		fn(req.Assertion)
	}
	return nil
}

// Post is the form the provider has the browser post to the service
// provider's assertion consumer service.
type Post struct {
	Action       string
	SAMLResponse string
	RelayState   string
}

// Form is the post as a form body.
func (p Post) Form() url.Values {
	return url.Values{"SAMLResponse": {p.SAMLResponse}, "RelayState": {p.RelayState}}
}

var inputRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
var actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// SignIn plays the browser at the provider: it follows authURL (the
// service provider's HTTP-Redirect AuthnRequest), fills in the sign-in
// form, and returns what the provider answers for the service provider.
func (p *IdP) SignIn(t testing.TB, authURL, user, password string) Post {
	t.Helper()
	resp, page := p.fetch(t, http.MethodGet, authURL, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sso = %d: %s", resp.StatusCode, page)
	}
	fields := hiddenFields(page)
	form := url.Values{"user": {user}, "password": {password}, "SAMLRequest": {fields["SAMLRequest"]}, "RelayState": {fields["RelayState"]}}
	resp, page = p.fetch(t, http.MethodPost, p.URL+"/sso", form)
	fields = hiddenFields(page)
	m := actionRe.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || fields["SAMLResponse"] == "" {
		t.Fatalf("sign-in at the provider = %d: %s", resp.StatusCode, page)
	}
	return Post{Action: html.UnescapeString(m[1]), SAMLResponse: fields["SAMLResponse"], RelayState: fields["RelayState"]}
}

func (p *IdP) fetch(t testing.TB, method, target string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = bytes.NewBufferString(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func hiddenFields(page string) map[string]string {
	out := map[string]string{}
	for _, m := range inputRe.FindAllStringSubmatch(page, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// Unsigned returns the SAMLResponse with every XML signature removed, as
// an attacker who rewrote the assertion would have to send it.
func Unsigned(t testing.TB, samlResponse string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, sig := range doc.FindElements("//Signature") {
		sig.Parent().RemoveChild(sig)
		removed++
	}
	if removed == 0 {
		t.Fatal("the response had no signature to remove")
	}
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func keyPair(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "samltest identity provider"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// quiet drops samlidp's log, which names users; what would end the
// process panics instead.
type quiet struct{}

func (quiet) Printf(string, ...any)     {}
func (quiet) Print(...any)              {}
func (quiet) Println(...any)            {}
func (quiet) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (quiet) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (quiet) Fatalln(v ...any)          { panic(fmt.Sprint(v...)) }
func (quiet) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (quiet) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (quiet) Panicln(v ...any)          { panic(fmt.Sprint(v...)) }
