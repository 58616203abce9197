package site

import (
	"errors"
	"net/http"

	"github.com/openconsult/openconsult/auth"
)

type setupPage struct {
	Token, Username, Error string
	MinLength, MaxLength   int
}

// maxFormBytes bounds a form body; the setup form is a few hundred bytes.
const maxFormBytes = 16 << 10

func (s *Site) setupForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := r.PathValue("token")
	ok, err := s.opt.Setup.Usable(r.Context(), token)
	if err != nil {
		s.internalError(w, r, "check setup link", err)
		return
	}
	if !ok {
		s.render(w, r, http.StatusGone, "gone", nil)
		return
	}
	s.render(w, r, http.StatusOK, "setup", s.setupData(token, "", ""))
}

func (s *Site) setupSubmit(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := r.PathValue("token")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusRequestEntityTooLarge, "error", errorPage{"err.form.large.title", "err.form.large.text"})
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	if password != r.PostForm.Get("confirm") {
		s.render(w, r, http.StatusUnprocessableEntity, "setup", s.setupData(token, username, s.text(r, "password.differ")))
		return
	}
	created, err := s.opt.Setup.Complete(r.Context(), token, username, password)
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.render(w, r, http.StatusUnprocessableEntity, "setup", s.setupData(token, username, s.policyText(r, policy)))
	case errors.Is(err, auth.ErrSetupClosed):
		s.render(w, r, http.StatusGone, "gone", nil)
	case errors.Is(err, auth.ErrBusy):
		s.busy(w, r)
	case err != nil:
		s.internalError(w, r, "complete setup", err)
	default:
		s.opt.Log.Info("first administrator created", "user", created.ID)
		s.render(w, r, http.StatusOK, "setup_done", struct{ Username string }{created.Username})
	}
}

func (s *Site) setupData(token, username, msg string) setupPage {
	return setupPage{Token: token, Username: username, Error: msg, MinLength: s.opt.PasswordLo, MaxLength: s.opt.PasswordHi}
}

func (s *Site) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.opt.Log.Error(what, "route", r.Pattern, "err", err)
	s.render(w, r, http.StatusInternalServerError, "error", errorPage{"err.internal.title", "err.internal.text"})
}
