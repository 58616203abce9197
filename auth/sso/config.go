package sso

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
)

// Roles a provider's groups can map to.
var roles = []string{"admin", "clinician"}

// Provider is one configured OpenID Connect identity provider.
type Provider struct {
	// Name appears in the callback URL and the audit log: 1 to 32 of a-z,
	// 0-9 and -.
	Name string `toml:"name"`
	// Label is the text of the sign-in button.
	Label        string `toml:"label"`
	Issuer       string `toml:"issuer"`
	ClientID     string `toml:"client_id"`
	ClientSecret string `toml:"-"`
	// GroupsClaim names the ID token claim that lists the user's groups
	// (default "groups"; Entra ID app roles arrive in "roles").
	GroupsClaim string `toml:"groups_claim"`
	// UsernameClaim names the claim that becomes the username of an account
	// created at first sign-in (default "preferred_username").
	UsernameClaim string `toml:"username_claim"`
	// Roles maps a group (as the provider sends it: a name, or an object
	// id for Entra ID) to "admin" or "clinician". A user in no mapped
	// group cannot sign in; in several, administrator wins.
	Roles map[string]string `toml:"roles"`
	// Scopes beyond openid (default profile and email).
	Scopes []string `toml:"scopes"`
	// KeepProviderSession leaves the person signed in at the provider when
	// they sign out here. By default signing out also ends the provider's
	// session (RP-initiated logout), so that the next person at a shared
	// workstation does not sign in as them with one click.
	KeepProviderSession bool `toml:"keep_provider_session"`
}

// String never shows the client secret.
func (p Provider) String() string { return fmt.Sprintf("oidc provider %s (%s)", p.Name, p.Issuer) }

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Check reports the first setting that cannot work.
func (p Provider) Check() error {
	if err := checkName(p.Name); err != nil {
		return err
	}
	if !usableURL(p.Issuer) {
		return fmt.Errorf("provider %s: issuer must be an https URL", p.Name)
	}
	if p.ClientID == "" {
		return fmt.Errorf("provider %s: client_id is required", p.Name)
	}
	if p.ClientSecret == "" {
		return fmt.Errorf("provider %s: a client secret is required (client_secret_file or client_secret_env)", p.Name)
	}
	return checkRoles(p.Name, p.Roles)
}

// checkRoles reports a role mapping that maps nothing or to an unknown role.
func checkRoles(name string, m map[string]string) error {
	if len(m) == 0 {
		return fmt.Errorf("provider %s: map at least one group to a role", name)
	}
	for g, r := range m {
		if g == "" || !slices.Contains(roles, r) {
			return fmt.Errorf("provider %s: group %q maps to %q; use admin or clinician", name, g, r)
		}
	}
	return nil
}

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("provider name %q: use 1 to 32 of a-z, 0-9 and -", name)
	}
	return nil
}

// usableURL reports whether raw is an https URL, or an http one on
// loopback (a provider a test or a developer runs on this machine).
func usableURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Host != "" && (u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())))
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Role is the role groups map to: administrator when any mapped group says
// so, else clinician when any does, else "".
func (p Provider) Role(groups []string) string { return roleOf(p.Roles, groups) }

// roleOf maps groups to a role by m, for providers of every kind.
func roleOf(m map[string]string, groups []string) string {
	best := ""
	for _, g := range groups {
		switch m[g] {
		case "admin":
			return "admin"
		case "clinician":
			best = "clinician"
		}
	}
	return best
}

func (p Provider) groupsClaim() string {
	if p.GroupsClaim == "" {
		return "groups"
	}
	return p.GroupsClaim
}

func (p Provider) usernameClaim() string {
	if p.UsernameClaim == "" {
		return "preferred_username"
	}
	return p.UsernameClaim
}

func (p Provider) scopes() []string {
	if len(p.Scopes) == 0 {
		return []string{"openid", "profile", "email"}
	}
	return append([]string{"openid"}, slices.DeleteFunc(slices.Clone(p.Scopes), func(s string) bool { return s == "openid" })...)
}

var errDuplicate = errors.New("two providers have the same name")
