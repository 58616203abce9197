package auth

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/openconsult/openconsult/store"
)

// FuzzPasskeyAssertion feeds arbitrary answers to a sign-in ceremony of an
// account with one registered passkey, through the same parsing and
// verification FinishSignIn uses: nothing but the authenticator's own
// answer may verify, and nothing may panic.
func FuzzPasskeyAssertion(f *testing.F) {
	svc := &Service{public: &url.URL{Scheme: "https", Host: "consult.example.org"}, now: time.Now}
	k, err := svc.NewPasskeys(nil, PasskeyOptions{})
	if err != nil {
		f.Fatal(err)
	}
	pu := &passkeyUser{u: store.User{ID: "u_fuzz", Username: "dr.fuzz"}}
	creation, regSession, err := k.rp.BeginRegistration(pu)
	if err != nil {
		f.Fatal(err)
	}
	opts, _ := json.Marshal(creation)
	key := newSoftKey(f, testOrigin)
	parsedReg, err := protocol.ParseCredentialCreationResponseBytes(key.register(f, opts))
	if err != nil {
		f.Fatal(err)
	}
	cred, err := k.rp.CreateCredential(pu, *regSession, parsedReg)
	if err != nil {
		f.Fatal(err)
	}
	pu.creds = append(pu.creds, *cred)

	assertion, _, err := k.rp.BeginLogin(pu)
	if err != nil {
		f.Fatal(err)
	}
	loginOpts, _ := json.Marshal(assertion)
	f.Add(key.assert(f, loginOpts)) // a real answer, to another challenge
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		_, sd, err := k.rp.BeginLogin(pu)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := protocol.ParseCredentialRequestResponseBytes(answer)
		if err != nil {
			return
		}
		if _, err := k.rp.ValidateLogin(pu, *sd, parsed); err == nil {
			t.Fatalf("answer to another challenge verified: %q", answer)
		}
	})
}
