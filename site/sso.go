package site

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
)

// SSOFlows is what the site needs from single sign-on.
type SSOFlows interface {
	Buttons() []sso.Button
	Known(name string) bool
	Begin(ctx context.Context, name string) (authURL, sealed string, err error)
	Finish(ctx context.Context, name string, query url.Values, sealed string) (sso.Identity, error)
	// SAML providers answer by a POST to the assertion consumer service.
	IsSAML(name string) bool
	FinishSAML(ctx context.Context, name string, form url.Values, sealed string) (sso.Identity, error)
	SAMLMetadata(name string) ([]byte, error)
	// LogoutURL is where a browser that signed out goes to end the
	// provider's session too; "" when nowhere.
	LogoutURL(ctx context.Context, name string) (string, error)
}

// SSOAccounts opens sessions for identities a provider vouched for.
type SSOAccounts interface {
	SignInExternal(ctx context.Context, ext auth.External, c auth.Client) (token, stage string, err error)
	FailExternal(ctx context.Context, provider, reason, userID string, c auth.Client) error
	// ExternalProvider names the provider a session's account signs in
	// with; "" for a local account.
	ExternalProvider(ctx context.Context, token string) (string, error)
}

// ssoCookie carries the sealed flow state (state, nonce, PKCE verifier)
// from the redirect to the provider until its return. SameSite=Lax: the
// return is a top-level GET from the provider's site, on which a Strict
// cookie would not be sent.
const ssoCookie = "__Host-oc_sso"

// samlCookie carries a SAML flow's sealed state (the AuthnRequest ID and
// the RelayState). The identity provider returns by a cross-site POST, on
// which only a SameSite=None cookie is sent; what it holds is sealed and
// opens only at the assertion consumer service of the provider that began.
const samlCookie = "__Host-oc_saml"

// flowCookie is the cookie that keeps a flow with provider name.
func (s *Site) flowCookie(name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: ssoCookie, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if s.opt.SSO.IsSAML(name) {
		c.Name, c.SameSite = samlCookie, http.SameSiteNoneMode
	}
	return c
}

// samlACSRoute is the assertion consumer service of the SAML providers.
const samlACSRoute = "POST /signin/sso/{provider}/acs"

// maxACSBody bounds the identity provider's POST to the assertion
// consumer service.
const maxACSBody = 1 << 20

// signinPage adds to p what the sign-in page offers besides the password:
// a button per identity provider and, when it is on, passwordless passkeys.
func (s *Site) signinPage(p formPage) formPage {
	if s.opt.SSO != nil {
		p.SSO = s.opt.SSO.Buttons()
	}
	if p.Data == nil {
		p.Data = signinData{Passwordless: s.passwordlessOn()}
	}
	return p
}

// ssoBegin sends the browser to the provider with a fresh flow.
func (s *Site) ssoBegin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	name := r.PathValue("provider")
	if s.opt.SSO == nil || !s.opt.SSO.Known(name) {
		s.notFound(w, r)
		return
	}
	if s.limited(w, r, limitSignIn) {
		return
	}
	authURL, sealed, err := s.opt.SSO.Begin(r.Context(), name)
	if err != nil {
		s.opt.Log.Warn("single sign-on could not start", "provider", name, "err", err)
		reason := "could not start"
		if e, ok := errors.AsType[*sso.Error](err); ok {
			reason = e.Reason
		}
		if err := s.opt.SSOAccounts.FailExternal(r.Context(), name, reason, "", client(r)); !errors.Is(err, auth.ErrSSORefused) {
			s.internalError(w, r, "audit sso", err)
			return
		}
		s.render(w, r, http.StatusBadGateway, "error", errorPage{"err.sso.title", "err.sso.text"})
		return
	}
	http.SetCookie(w, s.flowCookie(name, sealed, int(sso.FlowTTL.Seconds())))
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// ssoCallback finishes the flow the provider returns to. It is a GET, which
// the cross-origin protection lets through; the sealed state bound to this
// browser is what refuses a forged return.
func (s *Site) ssoCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	name := r.PathValue("provider")
	if s.opt.SSO == nil || !s.opt.SSO.Known(name) || s.opt.SSO.IsSAML(name) {
		s.notFound(w, r)
		return
	}
	if s.limited(w, r, limitSignIn) {
		return
	}
	id, err := s.opt.SSO.Finish(r.Context(), name, r.URL.Query(), s.takeFlow(w, r, name))
	s.ssoFinish(w, r, name, id, err)
}

// takeFlow returns the sealed flow state the browser kept for provider
// name and clears it: a flow finishes once.
func (s *Site) takeFlow(w http.ResponseWriter, r *http.Request, name string) string {
	c := s.flowCookie(name, "", -1)
	sealed := ""
	if got, err := r.Cookie(c.Name); err == nil {
		sealed = got.Value
	}
	http.SetCookie(w, c)
	return sealed
}

// ssoFinish opens a session for what a provider's answer established, or
// audits and shows the refusal.
func (s *Site) ssoFinish(w http.ResponseWriter, r *http.Request, name string, id sso.Identity, err error) {
	var refused *sso.Error
	if errors.As(err, &refused) {
		s.opt.Log.Info("single sign-on refused", "provider", name, "reason", refused.Reason)
		if err := s.opt.SSOAccounts.FailExternal(r.Context(), name, refused.Reason, "", client(r)); !errors.Is(err, auth.ErrSSORefused) {
			s.internalError(w, r, "audit sso", err)
			return
		}
		s.ssoRefused(w, r)
		return
	}
	if err != nil {
		s.internalError(w, r, "finish sso", err)
		return
	}
	ext := auth.External{Provider: id.Provider, Subject: id.Subject, Username: id.Username, Role: id.Role}
	token, stage, err := s.opt.SSOAccounts.SignInExternal(r.Context(), ext, client(r))
	switch {
	case errors.Is(err, auth.ErrSSORefused):
		s.ssoRefused(w, r)
	case err != nil:
		s.internalError(w, r, "sso sign-in", err)
	default:
		setSession(w, token)
		// Not a redirect: a browser treats the end of a redirect chain that
		// began on the provider's site as cross-site and would withhold the
		// SameSite=Strict session cookie. A navigation this page starts is
		// same-site.
		w.Header().Set("Refresh", "0; url="+stagePath[stage])
		s.render(w, r, http.StatusOK, "sso_continue", formPage{Data: stagePath[stage]})
	}
}

// samlACS is the assertion consumer service: the identity provider has
// the browser POST its signed answer here from its own site, so the
// cross-origin protection lets this one route through; what refuses a
// forged or replayed answer is its signature, the flow sealed in this
// browser's cookie that it must answer, and the ledger of assertions
// already used.
func (s *Site) samlACS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	name := r.PathValue("provider")
	if s.opt.SSO == nil || !s.opt.SSO.IsSAML(name) {
		s.notFound(w, r)
		return
	}
	if s.limited(w, r, limitSignIn) {
		return
	}
	sealed := s.takeFlow(w, r, name)
	r.Body = http.MaxBytesReader(w, r.Body, maxACSBody)
	if err := r.ParseForm(); err != nil {
		s.ssoFinish(w, r, name, sso.Identity{}, &sso.Error{Reason: "response unreadable"})
		return
	}
	id, err := s.opt.SSO.FinishSAML(r.Context(), name, r.PostForm, sealed)
	s.ssoFinish(w, r, name, id, err)
}

// samlMetadata publishes this platform's service provider metadata for a
// SAML provider, to register at the identity provider.
func (s *Site) samlMetadata(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if s.opt.SSO == nil || !s.opt.SSO.IsSAML(name) {
		s.notFound(w, r)
		return
	}
	md, err := s.opt.SSO.SAMLMetadata(name)
	if err != nil {
		s.internalError(w, r, "saml metadata", err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(md)
}

// providerLogout returns where to send the browser of the session token
// after it signed out here, so that its identity provider ends its session
// too; "" for a local account or when the provider keeps its session. A
// provider that cannot be asked never stops the sign-out here.
func (s *Site) providerLogout(r *http.Request, token string) string {
	if s.opt.SSO == nil || s.opt.SSOAccounts == nil {
		return ""
	}
	provider, err := s.opt.SSOAccounts.ExternalProvider(r.Context(), token)
	if err != nil || provider == "" {
		if err != nil {
			s.opt.Log.Warn("provider of the session unknown; signing out here only", "err", err)
		}
		return ""
	}
	target, err := s.opt.SSO.LogoutURL(r.Context(), provider)
	if err != nil {
		s.opt.Log.Warn("provider logout unavailable; signing out here only", "provider", provider, "err", err)
		return ""
	}
	return target
}

// signedOutTo ends a sign-out at target: the provider's end-session
// address or /signin. The provider is reached with a Refresh, not a
// redirect: the sign-out is a form's POST, and the content policy's
// form-action 'self' would stop a redirect to another site.
func (s *Site) signedOutTo(w http.ResponseWriter, r *http.Request, target string) {
	if target == "" {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Refresh", "0; url="+target)
	s.render(w, r, http.StatusOK, "error", errorPage{"err.sso.signedout.title", "err.sso.signedout.text"})
}

func (s *Site) ssoRefused(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusForbidden, "signin", s.signinPage(formPage{
		Error: s.text(r, "signin.sso.refused")}))
}
