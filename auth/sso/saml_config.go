package sso

import (
	"fmt"
	"net/url"
)

// SAMLProvider is one configured SAML 2.0 identity provider (AD FS, or
// any other that speaks only SAML).
type SAMLProvider struct {
	// Name and Label as for an OpenID Connect provider: the name is in the
	// provider's URLs here (<public-url>/signin/sso/<name>/metadata and
	// .../acs) and in the audit log.
	Name  string `toml:"name"`
	Label string `toml:"label"`
	// MetadataURL (https) or MetadataFile names the identity provider's
	// metadata, which holds its sign-in address and the certificates its
	// assertions must be signed with. Exactly one of them.
	MetadataURL  string `toml:"metadata_url"`
	MetadataFile string `toml:"metadata_file"`
	// IDPEntityID picks the identity provider out of metadata that lists
	// several (a federation's aggregate); default the first one.
	IDPEntityID string `toml:"idp_entity_id"`
	// EntityID is this platform's entity id (relying party identifier) as
	// registered at the identity provider; assertions must name it as
	// their audience. Default the metadata URL,
	// <public-url>/signin/sso/<name>/metadata.
	EntityID string `toml:"entity_id"`
	// SubjectAttribute names the attribute holding the user's stable,
	// never reassigned id; default the assertion's NameID, which must then
	// not be transient.
	SubjectAttribute string `toml:"subject_attribute"`
	// UsernameAttribute names the attribute that becomes the username of
	// an account created at first sign-in (default the NameID).
	UsernameAttribute string `toml:"username_attribute"`
	// GroupsAttribute names the attribute that lists the user's groups or
	// roles (default "groups"). Attributes match by Name or FriendlyName.
	GroupsAttribute string `toml:"groups_attribute"`
	// Roles maps a group, as the provider sends it, to "admin" or
	// "clinician"; a user in no mapped group cannot sign in.
	Roles map[string]string `toml:"roles"`
	// ForceAuthn asks the provider to authenticate the person at every
	// sign-in, even when it still has a session for them. Signing out
	// here does not end the provider's session (no single logout), so set
	// it where staff share workstations.
	ForceAuthn bool `toml:"force_authn"`
}

func (p SAMLProvider) String() string { return fmt.Sprintf("saml provider %s", p.Name) }

// Check reports the first setting that cannot work.
func (p SAMLProvider) Check() error {
	if err := checkName(p.Name); err != nil {
		return err
	}
	switch {
	case (p.MetadataURL == "") == (p.MetadataFile == ""):
		return fmt.Errorf("provider %s: set one of metadata_url and metadata_file", p.Name)
	case p.MetadataURL != "" && !usableURL(p.MetadataURL):
		return fmt.Errorf("provider %s: metadata_url must be an https URL", p.Name)
	}
	if p.EntityID != "" {
		if u, err := url.Parse(p.EntityID); err != nil || u.Scheme == "" {
			return fmt.Errorf("provider %s: entity_id must be a URI", p.Name)
		}
	}
	return checkRoles(p.Name, p.Roles)
}

// Role is the role groups map to, as for an OpenID Connect provider.
func (p SAMLProvider) Role(groups []string) string { return roleOf(p.Roles, groups) }

func (p SAMLProvider) groupsAttribute() string {
	if p.GroupsAttribute == "" {
		return "groups"
	}
	return p.GroupsAttribute
}
