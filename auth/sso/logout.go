package sso

import (
	"context"
	"net/url"
)

// LogoutURL is where to send a browser that signed out here so that the
// provider name ends its session too (OpenID Connect RP-initiated logout:
// the provider's end_session_endpoint with client_id and
// post_logout_redirect_uri <PublicURL>/signin). It is "" when there is
// nothing to end there: a SAML provider, a provider without an
// end-session endpoint, or one configured with keep_provider_session.
func (f *Flows) LogoutURL(ctx context.Context, name string) (string, error) {
	p, ok := f.providers[name]
	if !ok || p.cfg.KeepProviderSession {
		return "", nil
	}
	if _, _, err := f.setup(ctx, name); err != nil {
		return "", err
	}
	p.mu.Lock()
	endSession := p.endSession
	p.mu.Unlock()
	if endSession == "" {
		return "", nil
	}
	u, err := url.Parse(endSession)
	if err != nil {
		return "", nil // checked by setup
	}
	back := *f.public
	back.Path, back.RawQuery, back.Fragment = "/signin", "", ""
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	q.Set("post_logout_redirect_uri", back.String())
	u.RawQuery = q.Encode()
	return u.String(), nil
}
