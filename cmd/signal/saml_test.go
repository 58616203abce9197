package main

import (
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/internal/samltest"
)

// startWithSAML runs signal with one SAML identity provider, started on
// loopback, whose group consult-admins maps to admin and clinicians to
// clinician; the provider knows signal from the metadata signal publishes.
func startWithSAML(t *testing.T) (*devServer, *samltest.IdP) {
	t.Helper()
	idp := samltest.Start(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "providers.toml")
	if err := os.WriteFile(conf, []byte(`[[provider]]
kind = "saml"
name = "adfs"
label = "Sign in with AD FS"
metadata_url = "`+idp.MetadataURL+`"
groups_attribute = "eduPersonAffiliation"
[provider.roles]
"consult-admins" = "admin"
"clinicians" = "clinician"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, filepath.Join(dir, "data"), "-oidc-providers", conf)
	t.Cleanup(func() { d.stop() })
	resp, md := get(t, d.client, d.public+"/signin/sso/adfs/metadata")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata = %d", resp.StatusCode)
	}
	idp.Register(t, "openconsult", []byte(md))
	return d, idp
}

// samlSignIn walks a new browser through the identity provider and back
// to signal's assertion consumer service, and returns the browser and
// signal's answer.
func samlSignIn(t *testing.T, d *devServer, idp *samltest.IdP) (*http.Client, *http.Response) {
	t.Helper()
	c := *d.client
	c.Jar, _ = cookiejar.New(nil)
	resp, _ := get(t, &c, d.public+"/signin/sso/adfs")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("begin = %d", resp.StatusCode)
	}
	post := idp.SignIn(t, resp.Header.Get("Location"), "jdoe", "idp password")
	if post.Action != d.public+"/signin/sso/adfs/acs" {
		t.Fatalf("the provider posts to %s", post.Action)
	}
	req, _ := http.NewRequest(http.MethodPost, post.Action, strings.NewReader(post.Form().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", idp.URL)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return &c, resp
}

// Each SAML sign-in spends two of the ten sign-in attempts an address has
// at once (the button and the assertion consumer service), so the steps
// are split over two tests.

func TestSAMLSignInCreatesTheAccountFollowsItsRoleAndDisablesIt(t *testing.T) {
	d, idp := startWithSAML(t)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	if _, page := get(t, d.client, d.public+"/signin"); !strings.Contains(page, "Sign in with AD FS") {
		t.Fatal("no provider button on the sign-in page")
	}

	// First sign-in: the account is created with the mapped role, and the
	// session is full at once.
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "staff", "consult-admins")
	c, resp := samlSignIn(t, d, idp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Refresh") != "0; url=/home" {
		t.Fatalf("acs = %d", resp.StatusCode)
	}
	if resp, page := get(t, c, d.public+"/admin/users"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "jane.doe@example-hospital.org") {
		t.Fatalf("the new administrator's users page = %d", resp.StatusCode)
	}

	// Moved to the clinicians' group: the role follows at the next sign-in.
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "staff", "clinicians")
	c, resp = samlSignIn(t, d, idp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second sign-in = %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, d.public+"/consults"); resp.StatusCode != http.StatusOK {
		t.Fatalf("consults = %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, d.public+"/admin/users"); resp.StatusCode == http.StatusOK {
		t.Fatal("a clinician still reaches the users page")
	}

	// Out of every mapped group: the next sign-in disables the account and
	// its open session ends.
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "staff")
	if _, resp := samlSignIn(t, d, idp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unmapped sign-in = %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, d.public+"/consults"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("disabled account's session: %d -> %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Every step is in the audit log, with the provider and the reason.
	_, page := get(t, admin, d.public+"/admin/audit")
	for _, want := range []string{"auth.sso.signin", "provider=adfs", "user.created", "role=admin", "user.role.changed", "from=admin", "to=clinician",
		"user.disabled", "reason=no mapped group"} {
		if !strings.Contains(page, want) {
			t.Fatalf("audit page lacks %q", want)
		}
	}
	// No assertion content reaches the log.
	log := d.stderr.String() + d.stdout.String()
	for _, leak := range []string{"SAMLResponse", "PHNhbWxwOlJlc3BvbnNl", "<saml", "Assertion", "jane.doe"} {
		if strings.Contains(log, leak) {
			t.Fatalf("log contains %q", leak)
		}
	}
}

func TestSAMLAccountDisabledByGroupLossIsEnabledByAnAdministrator(t *testing.T) {
	d, idp := startWithSAML(t)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "clinicians")
	if _, resp := samlSignIn(t, d, idp); resp.StatusCode != http.StatusOK {
		t.Fatalf("first sign-in = %d", resp.StatusCode)
	}
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "staff")
	if _, resp := samlSignIn(t, d, idp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unmapped sign-in = %d", resp.StatusCode)
	}
	// Back in a mapped group, the account stays disabled: enabling it is
	// an administrator's decision.
	idp.SetUser(t, "jdoe", "idp password", "jane.doe@example-hospital.org", "clinicians")
	if _, resp := samlSignIn(t, d, idp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in of the disabled account = %d", resp.StatusCode)
	}
	_, page := get(t, admin, d.public+"/admin/users")
	enable := regexp.MustCompile(`action="(/admin/users/[^/"]+/enable)"`).FindStringSubmatch(page)
	if enable == nil || strings.Count(page, "/enable\"") != 1 {
		t.Fatalf("the users page offers no single Enable button:\n%s", page)
	}
	if resp, page := postForm(t, admin, d.public+enable[1], nil); resp.StatusCode != http.StatusOK || !strings.Contains(page, "The account is enabled") {
		t.Fatalf("enable = %d", resp.StatusCode)
	}
	if _, resp := samlSignIn(t, d, idp); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in after enabling = %d", resp.StatusCode)
	}
	_, page = get(t, admin, d.public+"/admin/audit")
	for _, want := range []string{"reason=account disabled", "user.enabled", "action=enable"} {
		if !strings.Contains(page, want) {
			t.Fatalf("audit page lacks %q", want)
		}
	}
}
