package site

import (
	"context"
	"errors"
	"net/http"

	"github.com/openconsult/openconsult/auth"
)

func (s *Site) resetRequestForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "reset_request", formPage{})
}

// ResetRequests takes password-reset requests. It only queues them: the
// lookup and the mail happen after the page answered, so the answer takes
// the same time whether the account exists.
type ResetRequests interface {
	RequestReset(ctx context.Context, username string, c auth.Client) error
}

func (s *Site) resetRequestSubmit(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, limitReset) || !s.readForm(w, r) {
		return
	}
	if err := s.opt.Resets.RequestReset(r.Context(), r.PostForm.Get("username"), s.mailClient(r)); err != nil {
		s.internalError(w, r, "request reset", err)
		return
	}
	// The same answer whether or not the account exists.
	s.render(w, r, http.StatusOK, "reset_request", formPage{Notice: s.text(r, "reset.sent")})
}

// linkPage serves /reset/{token} and /activate/{token}.
func (s *Site) linkForm(purpose string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ok, err := s.opt.Accounts.LinkUsable(r.Context(), r.PathValue("token"), purpose)
		if err != nil {
			s.internalError(w, r, "check link", err)
			return
		}
		if !ok {
			s.render(w, r, http.StatusGone, "error", errorPage{"err.link.invalid.title", "err.link.invalid.text"})
			return
		}
		s.render(w, r, http.StatusOK, "link_password", s.linkPage(purpose, r.PathValue("token"), ""))
	}
}

func (s *Site) linkPage(purpose, token, msg string) formPage {
	p := s.opt.Accounts.Policy().Password
	return formPage{Error: msg, Data: struct {
		Activate             bool
		Action               string
		MinLength, MaxLength int
	}{purpose == auth.PurposeActivate, "/" + purpose + "/" + token, p.MinLength, p.MaxLength}}
}

func (s *Site) linkSubmit(purpose string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.limited(w, r, limitReset) || !s.readForm(w, r) {
			return
		}
		token := r.PathValue("token")
		password := r.PostForm.Get("password")
		if password != r.PostForm.Get("confirm") {
			s.render(w, r, http.StatusUnprocessableEntity, "link_password", s.linkPage(purpose, token, s.text(r, "password.differ")))
			return
		}
		err := s.opt.Accounts.SetPasswordWithLink(r.Context(), token, purpose, password, client(r))
		var policy *auth.PolicyError
		switch {
		case errors.As(err, &policy):
			s.render(w, r, http.StatusUnprocessableEntity, "link_password", s.linkPage(purpose, token, s.policyText(r, policy)))
		case errors.Is(err, auth.ErrLinkInvalid):
			s.render(w, r, http.StatusGone, "error", errorPage{"err.link.invalid.title", "err.link.invalid.text"})
		case errors.Is(err, auth.ErrBusy):
			s.busy(w, r)
		case err != nil:
			s.internalError(w, r, "set password with link", err)
		default:
			s.render(w, r, http.StatusOK, "signin", s.signinPage(formPage{Notice: s.text(r, "link.done")}))
		}
	}
}
