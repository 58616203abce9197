package sso_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/auth/sso"
)

func TestLoadFileTakesSecretsFromFileOrEnvironment(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "entra.secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := `
[[provider]]
name = "entra"
label = "Hospital account"
issuer = "https://login.microsoftonline.com/tenant/v2.0"
client_id = "app-id"
client_secret_file = "` + secretFile + `"
groups_claim = "roles"
[provider.roles]
"Consult.Admin" = "admin"
"Consult.Clinician" = "clinician"

[[provider]]
name = "keycloak"
issuer = "https://sso.example-hospital.org/realms/staff"
client_id = "openconsult"
client_secret_env = "KC_SECRET"
[provider.roles]
"/clinicians" = "clinician"
`
	path := filepath.Join(dir, "oidc.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := sso.LoadFile(path, func(k string) string { return map[string]string{"KC_SECRET": "from-env"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	ps := c.OIDC
	if len(ps) != 2 || ps[0].ClientSecret != "from-file" || ps[1].ClientSecret != "from-env" || ps[0].Role([]string{"Consult.Admin"}) != "admin" {
		t.Fatalf("loaded %+v", ps)
	}
	for name, bad := range map[string]string{
		"secret in the file": strings.Replace(conf, `client_secret_env = "KC_SECRET"`, `client_secret = "inline"`, 1),
		"missing secret":     strings.Replace(conf, `client_secret_env = "KC_SECRET"`, `client_secret_env = "UNSET"`, 1),
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sso.LoadFile(path, func(string) string { return "" }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExampleProvidersFileLoads(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../deploy/oidc-providers.toml")
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "kc")
	if err := os.WriteFile(secret, []byte("kc-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "oidc.toml")
	conf := strings.Replace(string(example), "/etc/openconsult/keycloak-client-secret", secret, 1)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := sso.LoadFile(path, func(k string) string { return map[string]string{"SIGNAL_OIDC_ENTRA_SECRET": "entra-secret"}[k] })
	if err != nil || len(c.OIDC) != 2 || len(c.SAML) != 1 {
		t.Fatalf("example: %d OpenID Connect and %d SAML providers, %v", len(c.OIDC), len(c.SAML), err)
	}
}

func TestLoadFileReadsSAMLProvidersAndRefusesMixedSettings(t *testing.T) {
	const saml = `
[[provider]]
kind = "saml"
name = "adfs"
label = "Hospital account (AD FS)"
metadata_url = "https://adfs.example-hospital.org/FederationMetadata/2007-06/FederationMetadata.xml"
groups_attribute = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
username_attribute = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
[provider.roles]
"OpenConsult Clinicians" = "clinician"
`
	path := filepath.Join(t.TempDir(), "providers.toml")
	write := func(conf string) (sso.Config, error) {
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return sso.LoadFile(path, func(string) string { return "" })
	}
	c, err := write(saml)
	if err != nil || len(c.SAML) != 1 || len(c.OIDC) != 0 {
		t.Fatalf("loaded %+v, %v", c, err)
	}
	if p := c.SAML[0]; p.Name != "adfs" || p.Role([]string{"Domain Users", "OpenConsult Clinicians"}) != "clinician" {
		t.Fatalf("loaded %+v", p)
	}
	for name, bad := range map[string]string{
		"an OpenID Connect setting":       strings.Replace(saml, `name = "adfs"`, "name = \"adfs\"\nclient_id = \"x\"", 1),
		"a SAML setting without the kind": strings.Replace(saml, `kind = "saml"`, `issuer = "https://adfs.example-hospital.org/adfs"`, 1),
		"no metadata":                     strings.Replace(saml, "metadata_url", "# metadata_url", 1),
		"plain http metadata":             strings.Replace(saml, "https://adfs", "http://adfs", 1),
		"unknown kind":                    strings.Replace(saml, `kind = "saml"`, `kind = "ws-fed"`, 1),
		"no role mapping":                 saml[:strings.Index(saml, "[provider.roles]")],
		"unknown role":                    strings.Replace(saml, `= "clinician"`, `= "nurse"`, 1),
	} {
		if _, err := write(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
