package sso

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
)

// FuzzOpen feeds the flow cookie, which the browser controls, to open:
// anything but a value this site sealed is refused without a panic.
func FuzzOpen(f *testing.F) {
	sealer, err := KeySealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	flows := &Flows{sealer: sealer}
	good, err := flows.seal(flowState{Provider: "keycloak", State: "s", Nonce: "n", Verifier: "v", Expires: 1}, sealAAD)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-1] + "A")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := flows.open(s, sealAAD)
		if err == nil && s != good {
			// Only a sealed value opens; GCM makes any other one fail.
			if st.Provider != "keycloak" {
				t.Fatalf("%q opened to %+v", s, st)
			}
		}
	})
}

// FuzzStringList reads a groups claim of any JSON shape.
func FuzzStringList(f *testing.F) {
	f.Add(`["a","b"]`)
	f.Add(`"a"`)
	f.Add(`[1,{"x":2},null,"c"]`)
	f.Fuzz(func(t *testing.T, claim string) {
		var v any
		if err := json.Unmarshal([]byte(claim), &v); err != nil {
			return
		}
		stringList(v)
	})
}

// memoryLedger is a test double of the assertion ledger, in memory.
type memoryLedger struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *memoryLedger) ConsumeSAMLAssertion(_ context.Context, provider, id string, _, _ time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[provider+" "+id] {
		return false, nil
	}
	l.seen[provider+" "+id] = true
	return true, nil
}

// samlFuzzFlows has one SAML provider whose metadata is a file, and a
// flow begun with it.
func samlFuzzFlows(f *testing.F) (*Flows, flowState, string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	idpURL, _ := url.Parse("https://idp.example-hospital.org/saml")
	idp := saml.IdentityProvider{Key: key, Certificate: cert, MetadataURL: *idpURL.JoinPath("metadata"), SSOURL: *idpURL.JoinPath("sso")}
	md, err := xml.Marshal(idp.Metadata())
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "idp.xml")
	if err := os.WriteFile(path, md, 0o600); err != nil {
		f.Fatal(err)
	}
	sealer, _ := KeySealer([]byte("0123456789abcdef0123456789abcdef"))
	public, _ := url.Parse("https://consult.example-hospital.org")
	flows, err := New(Options{SAML: []SAMLProvider{{Name: "adfs", MetadataFile: path, Roles: map[string]string{"g": "clinician"}}},
		Ledger: &memoryLedger{seen: map[string]bool{}}, PublicURL: public, Sealer: sealer})
	if err != nil {
		f.Fatal(err)
	}
	authURL, sealed, err := flows.Begin(context.Background(), "adfs")
	if err != nil {
		f.Fatal(err)
	}
	st, err := flows.open(sealed, samlAAD)
	if err != nil || !strings.HasPrefix(authURL, "https://idp.example-hospital.org/saml/sso?") {
		f.Fatalf("begin: %s, %v", authURL, err)
	}
	return flows, st, sealed
}

// FuzzFinishSAML posts anything to the assertion consumer service of a
// flow this browser began: without the provider's signature nothing signs
// in, and every refusal is a reason for the audit log, never a panic.
func FuzzFinishSAML(f *testing.F) {
	flows, st, sealed := samlFuzzFlows(f)
	response := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r1" InResponseTo="` +
		st.Request + `" Version="2.0" IssueInstant="` + time.Now().UTC().Format(time.RFC3339) + `"><saml:Issuer>https://idp.example-hospital.org/saml/metadata</saml:Issuer>` +
		`<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
		`<saml:Assertion ID="a1" Version="2.0"><saml:Subject><saml:NameID>jane</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>`
	// The fuzzer writes the XML; the form carries it as the binding says.
	f.Add(true, []byte(response))
	f.Add(true, []byte(""))
	f.Add(true, []byte(`<?xml version="1.0"?>`))
	f.Add(false, []byte("<samlp:Response/>"))
	f.Fuzz(func(t *testing.T, sameRelay bool, doc []byte) {
		relay := "another flow"
		if sameRelay {
			relay = st.State
		}
		form := url.Values{"RelayState": {relay}, "SAMLResponse": {base64.StdEncoding.EncodeToString(doc)}}
		id, err := flows.FinishSAML(context.Background(), "adfs", form, sealed)
		var refused *Error
		if err == nil || !errors.As(err, &refused) || refused.Reason == "" {
			t.Fatalf("FinishSAML = %+v, %v", id, err)
		}
	})
}

// FuzzOpenSAMLFlow feeds the SAML flow cookie to open: a value sealed for
// an OpenID Connect flow, or anything else, does not open as a SAML flow.
func FuzzOpenSAMLFlow(f *testing.F) {
	sealer, _ := KeySealer([]byte("0123456789abcdef0123456789abcdef"))
	flows := &Flows{sealer: sealer}
	oidcFlow, _ := flows.seal(flowState{Provider: "adfs", State: "s", Request: "id-1", Expires: 1}, sealAAD)
	samlFlow, _ := flows.seal(flowState{Provider: "adfs", State: "s", Request: "id-1", Expires: 1}, samlAAD)
	if _, err := flows.open(oidcFlow, samlAAD); err == nil {
		f.Fatal("a flow sealed for OpenID Connect opened as a SAML flow")
	}
	f.Add(oidcFlow)
	f.Add(samlFlow[:len(samlFlow)-1] + "B")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if st, err := flows.open(s, samlAAD); err == nil && s != samlFlow {
			if st.Request != "id-1" {
				t.Fatalf("%q opened to %+v", s, st)
			}
		}
	})
}
