package site

import (
	"errors"
	"net/http"

	"github.com/openconsult/openconsult/auth"
)

// passkeyCookie carries the token of a sign-in ceremony begun before anyone
// is signed in; the server keeps the ceremony under its hash.
const passkeyCookie = "__Host-oc_passkey"

// passwordlessRoutes adds sign-in with a discoverable passkey alone.
func (s *Site) passwordlessRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /signin/passkey/discover/options", s.passwordlessOptions)
	mux.HandleFunc("POST /signin/passkey/discover", s.passwordlessSignIn)
}

// signinData tells the sign-in page whether to offer a passkey alone.
type signinData struct{ Passwordless bool }

func (s *Site) passwordlessOn() bool {
	return s.opt.Passkeys != nil && s.opt.Passkeys.PasswordlessOn()
}

func (s *Site) passwordlessOptions(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, limitSignIn) {
		return
	}
	opts, token, err := s.opt.Passkeys.BeginPasswordless(r.Context())
	if errors.Is(err, auth.ErrPasswordlessOff) {
		s.writeJSON(w, http.StatusNotFound, passkeyError{"off"})
		return
	}
	if err != nil {
		s.passkeyFailure(w, r, "begin passwordless sign-in", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: passkeyCookie, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 300})
	s.writeJSON(w, http.StatusOK, jsonRaw(opts))
}

func (s *Site) passwordlessSignIn(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, limitSignIn) {
		return
	}
	body, ok := s.readPasskeyBody(w, r)
	if !ok {
		return
	}
	var token string
	if c, err := r.Cookie(passkeyCookie); err == nil {
		token = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: passkeyCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	session, stage, err := s.opt.Passkeys.FinishPasswordless(r.Context(), token, body, client(r))
	if errors.Is(err, auth.ErrPasswordlessOff) {
		s.writeJSON(w, http.StatusNotFound, passkeyError{"off"})
		return
	}
	if err != nil {
		s.passkeyFailure(w, r, "finish passwordless sign-in", err)
		return
	}
	setSession(w, session)
	s.writeJSON(w, http.StatusOK, struct {
		Next string `json:"next"`
	}{stagePath[stage]})
}
