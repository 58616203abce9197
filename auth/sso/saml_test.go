package sso_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/internal/samltest"
	"github.com/openconsult/openconsult/store"
)

// samlFlows runs the flows with one SAML provider, the identity provider
// idp, registered there from the metadata the flows publish. Assertions
// are remembered in a real database.
func samlFlows(t *testing.T, idp *samltest.IdP) *sso.Flows {
	t.Helper()
	return samlReplica(t, idp, openDB(t), testSealer(t))
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// samlReplica is one server's flows over the database and the keyring
// (sealer) every server of the site shares.
func samlReplica(t *testing.T, idp *samltest.IdP, db *store.DB, sealer sso.Sealer) *sso.Flows {
	t.Helper()
	public, _ := url.Parse(site)
	f, err := sso.New(sso.Options{
		SAML: []sso.SAMLProvider{{Name: "adfs", Label: "Hospital account (AD FS)", MetadataURL: idp.MetadataURL,
			UsernameAttribute: "uid", GroupsAttribute: "eduPersonAffiliation",
			Roles: map[string]string{"consult-admins": "admin", "clinicians": "clinician"}}},
		Ledger: db, PublicURL: public, Sealer: sealer,
	})
	if err != nil {
		t.Fatal(err)
	}
	md, err := f.SAMLMetadata("adfs")
	if err != nil {
		t.Fatal(err)
	}
	idp.Register(t, "openconsult", md)
	return f
}

// flow is one sign-in started at the site: what the browser carries to
// the identity provider and back.
type flow struct {
	authURL, sealed, relay string
}

func begin(t *testing.T, f *sso.Flows) flow {
	t.Helper()
	authURL, sealed, err := f.Begin(context.Background(), "adfs")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	if u.Query().Get("SAMLRequest") == "" || u.Query().Get("RelayState") == "" {
		t.Fatalf("not an HTTP-Redirect AuthnRequest: %s", authURL)
	}
	return flow{authURL, sealed, u.Query().Get("RelayState")}
}

func TestSAMLSignInMapsGroupsToRoles(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	if b := f.Buttons(); len(b) != 1 || b[0] != (sso.Button{Name: "adfs", Label: "Hospital account (AD FS)"}) || !f.IsSAML("adfs") {
		t.Fatalf("buttons %+v", b)
	}
	cases := []struct {
		name   string
		groups []string
		role   string
	}{
		{"administrator group wins", []string{"clinicians", "consult-admins"}, "admin"},
		{"clinician group", []string{"staff", "clinicians"}, "clinician"},
		{"no mapped group", []string{"staff"}, ""},
		{"no groups at all", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idp.SetUser(t, "jdoe", "pw-"+tc.name, "jane.doe@example-hospital.org", tc.groups...)
			fl := begin(t, f)
			post := idp.SignIn(t, fl.authURL, "jdoe", "pw-"+tc.name)
			if post.Action != site+"/signin/sso/adfs/acs" {
				t.Fatalf("the provider posts to %s", post.Action)
			}
			id, err := f.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed)
			if err != nil {
				t.Fatal(err)
			}
			want := sso.Identity{Provider: "adfs", Subject: "jane.doe@example-hospital.org", Username: "jdoe", Groups: tc.groups, Role: tc.role}
			if id.Provider != want.Provider || id.Subject != want.Subject || id.Username != want.Username || id.Role != want.Role || !slices.Equal(id.Groups, want.Groups) {
				t.Fatalf("identity %+v, want %+v", id, want)
			}
		})
	}
}

// TestSAMLRefusals proves each check of the assertion consumer service
// with an answer the real identity provider made (and signed, unless the
// case strips the signature).
func TestSAMLRefusals(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	idp.SetUser(t, "jdoe", "pw", "jane.doe@example-hospital.org", "clinicians")
	past := func(a *saml.Assertion) {
		then := time.Now().Add(-20 * time.Minute)
		a.IssueInstant = then
		a.Conditions.NotBefore, a.Conditions.NotOnOrAfter = then, then.Add(5*time.Minute)
		for i := range a.Subject.SubjectConfirmations {
			a.Subject.SubjectConfirmations[i].SubjectConfirmationData.NotOnOrAfter = then.Add(5 * time.Minute)
		}
	}
	cases := []struct {
		name   string
		alter  func(*saml.Assertion)                          // before the provider signs
		post   func(t *testing.T, p *samltest.Post, fl *flow) // what the browser (or an attacker) posts
		reason string
	}{
		{name: "unsigned response and assertion", reason: "assertion unsigned",
			post: func(t *testing.T, p *samltest.Post, _ *flow) { p.SAMLResponse = samltest.Unsigned(t, p.SAMLResponse) }},
		{name: "groups rewritten after signing", reason: "assertion signature",
			post: func(t *testing.T, p *samltest.Post, _ *flow) {
				raw, _ := base64.StdEncoding.DecodeString(p.SAMLResponse)
				forged := strings.Replace(string(raw), ">clinicians<", ">consult-admins<", 1)
				if forged == string(raw) {
					t.Fatal("no group to rewrite")
				}
				p.SAMLResponse = base64.StdEncoding.EncodeToString([]byte(forged))
			}},
		{name: "wrong audience", reason: "assertion audience",
			alter: func(a *saml.Assertion) {
				a.Conditions.AudienceRestrictions[0].Audience.Value = "https://another-service.example.org/saml"
			}},
		{name: "expired assertion", alter: past, reason: "assertion expired"},
		{name: "assertion for another request", reason: "request mismatch",
			post: func(t *testing.T, p *samltest.Post, fl *flow) {
				// The same browser started a second sign-in; the answer to
				// the first, with the second's RelayState, is refused.
				other := begin(t, f)
				*fl, p.RelayState = other, other.relay
			}},
		{name: "RelayState of another flow", reason: "state mismatch",
			post: func(t *testing.T, p *samltest.Post, fl *flow) { *fl = begin(t, f) }},
		{name: "no flow in this browser", reason: "sign-in expired or not started here",
			post: func(t *testing.T, p *samltest.Post, fl *flow) { fl.sealed = "" }},
		{name: "flow cookie altered", reason: "sign-in expired or not started here",
			post: func(t *testing.T, p *samltest.Post, fl *flow) { fl.sealed = fl.sealed[:len(fl.sealed)-2] + "AA" }},
		{name: "no response", reason: "no response",
			post: func(t *testing.T, p *samltest.Post, _ *flow) { p.SAMLResponse = "" }},
		{name: "response not base64", reason: "response unreadable",
			post: func(t *testing.T, p *samltest.Post, _ *flow) { p.SAMLResponse = "<Response/>" }},
		{name: "response too large", reason: "response too large",
			post: func(t *testing.T, p *samltest.Post, _ *flow) { p.SAMLResponse = strings.Repeat("A", 1<<20) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idp.Alter(tc.alter)
			defer idp.Alter(nil)
			fl := begin(t, f)
			post := idp.SignIn(t, fl.authURL, "jdoe", "pw")
			if tc.post != nil {
				tc.post(t, &post, &fl)
			}
			_, err := f.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed)
			if reason(err) != tc.reason {
				t.Fatalf("refused with %q (%v), want %q", reason(err), err, tc.reason)
			}
		})
	}
}

func TestSAMLReplayedAssertionIsRefused(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	idp.SetUser(t, "jdoe", "pw", "jane.doe@example-hospital.org", "clinicians")
	fl := begin(t, f)
	post := idp.SignIn(t, fl.authURL, "jdoe", "pw")
	if _, err := f.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed); err != nil {
		t.Fatal(err)
	}
	// Whoever captured the post and the browser's flow cookie posts both
	// again, within the assertion's validity.
	_, err := f.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed)
	if reason(err) != "assertion replayed" {
		t.Fatalf("replay refused with %q (%v)", reason(err), err)
	}
}

func TestSAMLAssertionReplayedToAnotherServerIsRefused(t *testing.T) {
	idp := samltest.Start(t)
	db, sealer := openDB(t), testSealer(t)
	one, two := samlReplica(t, idp, db, sealer), samlReplica(t, idp, db, sealer)
	idp.SetUser(t, "jdoe", "pw", "jane.doe@example-hospital.org", "clinicians")
	fl := begin(t, one)
	post := idp.SignIn(t, fl.authURL, "jdoe", "pw")
	if _, err := one.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed); err != nil {
		t.Fatal(err)
	}
	// The other server opens the flow (same keyring) but remembers the
	// assertion (same database).
	_, err := two.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed)
	if reason(err) != "assertion replayed" {
		t.Fatalf("replay to another server refused with %q (%v)", reason(err), err)
	}
}

func TestSAMLAssertionSignedByAnotherKeyIsRefused(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	idp.SetUser(t, "jdoe", "pw", "jane.doe@example-hospital.org", "consult-admins")
	fl := begin(t, f)
	idp.SignWithForeignKey(true)
	post := idp.SignIn(t, fl.authURL, "jdoe", "pw")
	_, err := f.FinishSAML(context.Background(), "adfs", post.Form(), fl.sealed)
	if reason(err) != "assertion signature" {
		t.Fatalf("refused with %q (%v)", reason(err), err)
	}
}

// authnRequest decodes the HTTP-Redirect binding's SAMLRequest.
func authnRequest(t *testing.T, authURL string) string {
	t.Helper()
	u, _ := url.Parse(authURL)
	deflated, err := base64.StdEncoding.DecodeString(u.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	xml, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	return string(xml)
}

func TestSAMLForceAuthnIsAsked(t *testing.T) {
	idp := samltest.Start(t)
	public, _ := url.Parse(site)
	for _, force := range []bool{false, true} {
		f, err := sso.New(sso.Options{SAML: []sso.SAMLProvider{{Name: "adfs", MetadataURL: idp.MetadataURL, ForceAuthn: force,
			Roles: map[string]string{"clinicians": "clinician"}}}, Ledger: forgetfulLedger{}, PublicURL: public, Sealer: testSealer(t)})
		if err != nil {
			t.Fatal(err)
		}
		req := authnRequest(t, begin(t, f).authURL)
		if strings.Contains(req, `ForceAuthn="true"`) != force || !strings.Contains(req, `AssertionConsumerServiceURL="`+site+`/signin/sso/adfs/acs"`) {
			t.Fatalf("force_authn %v: request %s", force, req)
		}
	}
}

func TestSAMLMetadataNamesTheAssertionConsumerService(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	md, err := f.SAMLMetadata("adfs")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`entityID="` + site + `/signin/sso/adfs/metadata"`, `Location="` + site + `/signin/sso/adfs/acs"`,
		`Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"`} {
		if !strings.Contains(string(md), want) {
			t.Fatalf("metadata lacks %s:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "HTTP-Artifact") {
		t.Fatal("metadata offers the artifact binding")
	}
}

func TestSAMLProviderDownCannotStart(t *testing.T) {
	idp := samltest.Start(t)
	f := samlFlows(t, idp)
	idp.Close()
	if _, _, err := f.Begin(context.Background(), "adfs"); reason(err) != "metadata unavailable" {
		t.Fatalf("begin with the provider down: %q (%v)", reason(err), err)
	}
}

// forgetfulLedger is a test double of the assertion ledger that remembers
// nothing, so a benchmark can verify one answer many times.
type forgetfulLedger struct{}

func (forgetfulLedger) ConsumeSAMLAssertion(context.Context, string, string, time.Time, time.Time) (bool, error) {
	return true, nil
}

// BenchmarkFinishSAML measures what the assertion consumer service spends
// on one answer: decoding, XML parsing, the two RSA-SHA256 signatures
// (Response and assertion) and the checks; the ledger is left out.
func BenchmarkFinishSAML(b *testing.B) {
	idp := samltest.Start(b)
	public, _ := url.Parse(site)
	sealer, err := sso.KeySealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := sso.New(sso.Options{SAML: []sso.SAMLProvider{{Name: "adfs", MetadataURL: idp.MetadataURL, GroupsAttribute: "eduPersonAffiliation",
		Roles: map[string]string{"clinicians": "clinician"}}}, Ledger: forgetfulLedger{}, PublicURL: public, Sealer: sealer})
	if err != nil {
		b.Fatal(err)
	}
	md, _ := f.SAMLMetadata("adfs")
	idp.Register(b, "openconsult", md)
	idp.SetUser(b, "jdoe", "pw", "jane.doe@example-hospital.org", "clinicians")
	authURL, sealed, err := f.Begin(context.Background(), "adfs")
	if err != nil {
		b.Fatal(err)
	}
	form := idp.SignIn(b, authURL, "jdoe", "pw").Form()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.FinishSAML(context.Background(), "adfs", form, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSAMLMetadataInHandIsKeptWhenARefreshFails(t *testing.T) {
	idp := samltest.Start(t)
	public, _ := url.Parse(site)
	now := time.Now()
	f, err := sso.New(sso.Options{SAML: []sso.SAMLProvider{{Name: "adfs", MetadataURL: idp.MetadataURL, Roles: map[string]string{"clinicians": "clinician"}}},
		Ledger: forgetfulLedger{}, PublicURL: public, Sealer: testSealer(t), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	begin(t, f) // reads the metadata
	idp.Close()
	now = now.Add(sso.MetadataRefresh + time.Minute)
	// The refresh fails; sign-ins go on with the metadata in hand.
	if fl := begin(t, f); !strings.HasPrefix(fl.authURL, idp.URL+"/sso?") {
		t.Fatalf("begin after a failed refresh: %s", fl.authURL)
	}
}
