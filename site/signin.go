package site

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/auth/sso"
)

type formPage struct {
	Error    string
	Notice   string
	Username string
	Data     any
	SSO      []sso.Button // identity providers offered on the sign-in page
}

// readForm bounds and parses a posted form; false means the reply is sent.
func (s *Site) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusRequestEntityTooLarge, "error", errorPage{"err.form.large.title", "err.form.large.text"})
		return false
	}
	return true
}

func (s *Site) signinForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if id, ok, _ := s.identity(r); ok {
		http.Redirect(w, r, stagePath[id.Stage], http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", s.signinPage(formPage{}))
}

func (s *Site) signinSubmit(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.limited(w, r, limitSignIn) || !s.readForm(w, r) {
		return
	}
	username := r.PostForm.Get("username")
	token, stage, err := s.opt.Accounts.SignIn(r.Context(), username, r.PostForm.Get("password"), client(r))
	switch {
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrLocked):
		msg := s.text(r, "signin.wrong")
		if errors.Is(err, auth.ErrLocked) {
			msg = s.text(r, "signin.locked")
		}
		s.render(w, r, http.StatusUnauthorized, "signin", s.signinPage(formPage{Error: msg, Username: username}))
	case errors.Is(err, auth.ErrBusy):
		s.busy(w, r)
	case err != nil:
		s.internalError(w, r, "sign in", err)
	default:
		setSession(w, token)
		http.Redirect(w, r, stagePath[stage], http.StatusSeeOther)
	}
}

func (s *Site) codeForm(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	s.render(w, r, http.StatusOK, "signin_code", s.codePage(r, id, ""))
}

// codePage offers a passkey next to the code when the account has one.
func (s *Site) codePage(r *http.Request, id auth.Identity, msg string) formPage {
	return formPage{Error: msg, Data: struct{ Passkey bool }{s.hasPasskeys(r, id)}}
}

func (s *Site) codeSubmit(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if s.limited(w, r, limitCode) || !s.readForm(w, r) {
		return
	}
	token, stage, err := s.verifyCode(r, id, r.PostForm.Get("code"))
	switch {
	case errors.Is(err, auth.ErrPasskeyRequired):
		s.render(w, r, http.StatusUnauthorized, "signin_code", s.codePage(r, id, s.text(r, "code.passkey.required")))
	case errors.Is(err, auth.ErrBadCode):
		s.render(w, r, http.StatusUnauthorized, "signin_code", s.codePage(r, id, s.text(r, "code.wrong")))
	case errors.Is(err, auth.ErrLocked):
		clearSession(w)
		s.render(w, r, http.StatusUnauthorized, "signin", s.signinPage(formPage{Error: s.text(r, "code.locked")}))
	case err != nil:
		s.internalError(w, r, "second factor", err)
	default:
		setSession(w, token)
		http.Redirect(w, r, stagePath[stage], http.StatusSeeOther)
	}
}

type enrollPage struct {
	Secret string
	// QR is a data: URI the server made itself; html/template would
	// otherwise refuse it as an unsafe URL.
	QR template.URL
}

func enrollData(en auth.Enrollment) enrollPage {
	return enrollPage{Secret: en.Secret, QR: template.URL(en.QRData)}
}

func (s *Site) enrollForm(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	en, err := s.opt.Accounts.BeginEnrollment(r.Context(), id)
	if errors.Is(err, auth.ErrForbidden) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	if err != nil {
		s.internalError(w, r, "begin enrollment", err)
		return
	}
	s.render(w, r, http.StatusOK, "enroll", formPage{Data: enrollData(en)})
}

func (s *Site) enrollSubmit(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	codes, token, stage, err := s.opt.Accounts.ConfirmEnrollment(r.Context(), id, r.PostForm.Get("code"), client(r))
	switch {
	case errors.Is(err, auth.ErrBadCode):
		en, err := s.opt.Accounts.BeginEnrollment(r.Context(), id)
		if err != nil {
			s.internalError(w, r, "begin enrollment", err)
			return
		}
		s.render(w, r, http.StatusUnprocessableEntity, "enroll", formPage{Error: s.text(r, "enroll.mismatch"), Data: enrollData(en)})
	case errors.Is(err, auth.ErrForbidden):
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	case err != nil:
		s.internalError(w, r, "confirm enrollment", err)
	default:
		setSession(w, token)
		s.render(w, r, http.StatusOK, "recovery_codes", formPage{Data: struct {
			Codes []string
			Next  string
		}{codes, stagePath[stage]}})
	}
}

func (s *Site) passwordForm(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	s.render(w, r, http.StatusOK, "password", s.passwordPage(id, ""))
}

func (s *Site) passwordPage(id auth.Identity, msg string) formPage {
	p := s.opt.Accounts.Policy().Password
	return formPage{Error: msg, Data: struct {
		Forced               bool
		MinLength, MaxLength int
	}{id.Stage == auth.StageChange, p.MinLength, p.MaxLength}}
}

func (s *Site) passwordSubmit(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if s.limited(w, r, limitPassword) || !s.readForm(w, r) {
		return
	}
	next := r.PostForm.Get("password")
	if next != r.PostForm.Get("confirm") {
		s.render(w, r, http.StatusUnprocessableEntity, "password", s.passwordPage(id, s.text(r, "password.differ.new")))
		return
	}
	token, err := s.opt.Accounts.ChangePassword(r.Context(), id, r.PostForm.Get("current"), next, client(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.render(w, r, http.StatusUnprocessableEntity, "password", s.passwordPage(id, s.policyText(r, policy)))
	case errors.Is(err, auth.ErrLocked):
		// Guessing the current password from a session ends the session.
		if err := s.opt.Accounts.SignOut(r.Context(), sessionToken(r)); err != nil {
			s.internalError(w, r, "sign out", err)
			return
		}
		clearSession(w)
		s.render(w, r, http.StatusUnauthorized, "signin", s.signinPage(formPage{Error: s.text(r, "signin.locked")}))
	case errors.Is(err, auth.ErrBusy):
		s.busy(w, r)
	case err != nil:
		s.internalError(w, r, "change password", err)
	default:
		setSession(w, token)
		http.Redirect(w, r, "/account?changed=password", http.StatusSeeOther)
	}
}

func (s *Site) account(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	left, err := s.opt.Accounts.RecoveryCodesLeft(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "recovery codes", err)
		return
	}
	notice := ""
	switch r.URL.Query().Get("changed") {
	case "password":
		notice = s.text(r, "account.password.changed")
	case "profile":
		notice = s.text(r, "account.display.name.saved")
	}
	s.renderAccount(w, r, id, http.StatusOK, formPage{Notice: notice}, id.User.DisplayName, left)
}

func (s *Site) renderAccount(w http.ResponseWriter, r *http.Request, id auth.Identity, code int, page formPage, displayName string, codesLeft int) {
	page.Data = struct {
		Username, Role, DisplayName      string
		TOTP, Admin, Clinician, Passkeys bool
		CodesLeft                        int
	}{id.User.Username, id.User.Role, displayName, !id.User.TOTPEnabledAt.IsZero(), id.IsAdmin(), id.User.Role == "clinician", s.opt.Passkeys != nil, codesLeft}
	s.render(w, r, code, "account", page)
}

// profileSubmit changes the name the account shows to patients.
func (s *Site) profileSubmit(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	name := r.PostForm.Get("display_name")
	err := s.opt.Accounts.SetDisplayName(r.Context(), id, id.User.ID, name, client(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		left, lerr := s.opt.Accounts.RecoveryCodesLeft(r.Context(), id)
		if lerr != nil {
			s.internalError(w, r, "recovery codes", lerr)
			return
		}
		s.renderAccount(w, r, id, http.StatusUnprocessableEntity, formPage{Error: s.policyText(r, policy)}, name, left)
	case err != nil:
		s.internalError(w, r, "set display name", err)
	default:
		http.Redirect(w, r, "/account?changed=profile", http.StatusSeeOther)
	}
}

func (s *Site) signout(w http.ResponseWriter, r *http.Request) {
	target := s.providerLogout(r, sessionToken(r))
	if err := s.opt.Accounts.SignOut(r.Context(), sessionToken(r)); err != nil {
		s.internalError(w, r, "sign out", err)
		return
	}
	clearSession(w)
	s.signedOutTo(w, r, target)
}

func (s *Site) signoutEverywhere(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	target := s.providerLogout(r, sessionToken(r))
	if err := s.opt.Accounts.SignOutEverywhere(r.Context(), id, client(r)); err != nil {
		s.internalError(w, r, "sign out everywhere", err)
		return
	}
	clearSession(w)
	s.signedOutTo(w, r, target)
}

// home sends a signed-in user to where their work is.
func (s *Site) home(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.User.Role == "clinician" {
		http.Redirect(w, r, "/consults", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}
