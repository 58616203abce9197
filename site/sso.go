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
}

// SSOAccounts opens sessions for identities a provider vouched for.
type SSOAccounts interface {
	SignInExternal(ctx context.Context, ext auth.External, c auth.Client) (token, stage string, err error)
	FailExternal(ctx context.Context, provider, reason, userID string, c auth.Client) error
}

// ssoCookie carries the sealed flow state (state, nonce, PKCE verifier)
// from the redirect to the provider until its return. SameSite=Lax: the
// return is a top-level GET from the provider's site, on which a Strict
// cookie would not be sent.
const ssoCookie = "__Host-oc_sso"

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
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: sealed, Path: "/", MaxAge: int(sso.FlowTTL.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// ssoCallback finishes the flow the provider returns to. It is a GET, which
// the cross-origin protection lets through; the sealed state bound to this
// browser is what refuses a forged return.
func (s *Site) ssoCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	name := r.PathValue("provider")
	if s.opt.SSO == nil || !s.opt.SSO.Known(name) {
		s.notFound(w, r)
		return
	}
	if s.limited(w, r, limitSignIn) {
		return
	}
	sealed := ""
	if c, err := r.Cookie(ssoCookie); err == nil {
		sealed = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	id, err := s.opt.SSO.Finish(r.Context(), name, r.URL.Query(), sealed)
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

func (s *Site) ssoRefused(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusForbidden, "signin", s.signinPage(formPage{
		Error: s.text(r, "signin.sso.refused")}))
}
