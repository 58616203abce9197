package main

import (
	"cmp"
	"log/slog"
	"net/url"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/site"
)

// ssoFlows loads the -oidc-providers file (OpenID Connect and SAML
// providers); nil when none is set. The flow state is sealed by the
// keyring, so any replica can finish a flow another began, and SAML
// assertions are remembered in the database that every replica shares.
func ssoFlows(s *settings, public *url.URL, keys sso.Sealer, ledger sso.AssertionLedger, log *slog.Logger) (site.SSOFlows, error) {
	if s.oidcProviders == "" {
		return nil, nil
	}
	c, err := sso.LoadFile(s.oidcProviders, s.getenv)
	if err != nil {
		return nil, err
	}
	flows, err := sso.New(sso.Options{Providers: c.OIDC, SAML: c.SAML, Ledger: ledger, PublicURL: public, Sealer: keys})
	if err != nil {
		return nil, err
	}
	for _, p := range c.OIDC {
		log.Info("single sign-on provider configured", "provider", p.Name, "kind", sso.KindOIDC, "issuer", p.Issuer)
	}
	for _, p := range c.SAML {
		log.Info("single sign-on provider configured", "provider", p.Name, "kind", sso.KindSAML, "metadata", cmp.Or(p.MetadataURL, p.MetadataFile))
	}
	return flows, nil
}

// breakGlassNames normalizes usernames as sign-in does; an unusable name
// stays as given and so matches no account.
func breakGlassNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if norm, err := auth.NormalizeUsername(n); err == nil {
			n = norm
		}
		out = append(out, n)
	}
	return out
}
