package main

import (
	"log/slog"
	"net/url"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
	"github.com/openconsult/openconsult/site"
)

// ssoFlows loads the -oidc-providers file; nil when none is set. The flow
// state is sealed by the keyring, so any replica can finish a flow another
// began.
func ssoFlows(s *settings, public *url.URL, keys sso.Sealer, log *slog.Logger) (site.SSOFlows, error) {
	if s.oidcProviders == "" {
		return nil, nil
	}
	providers, err := sso.LoadFile(s.oidcProviders, s.getenv)
	if err != nil {
		return nil, err
	}
	flows, err := sso.New(sso.Options{Providers: providers, PublicURL: public, Sealer: keys})
	if err != nil {
		return nil, err
	}
	for _, p := range providers {
		log.Info("single sign-on provider configured", "provider", p.Name, "issuer", p.Issuer)
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
