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
	ps, err := sso.LoadFile(path, func(k string) string { return map[string]string{"KC_SECRET": "from-env"}[k] })
	if err != nil {
		t.Fatal(err)
	}
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
	ps, err := sso.LoadFile(path, func(k string) string { return map[string]string{"SIGNAL_OIDC_ENTRA_SECRET": "entra-secret"}[k] })
	if err != nil || len(ps) != 2 {
		t.Fatalf("example: %d providers, %v", len(ps), err)
	}
}
