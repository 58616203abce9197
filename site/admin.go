package site

import (
	"errors"
	"net/http"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/store"
)

type usersPage struct {
	Users []auth.UserSummary
	Self  string
	Roles []string
	// Passkeys offers the removal of a user's passkeys.
	Passkeys bool
}

func (s *Site) usersList(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	s.renderUsers(w, r, id, http.StatusOK, formPage{})
}

func (s *Site) renderUsers(w http.ResponseWriter, r *http.Request, id auth.Identity, code int, page formPage) {
	users, err := s.opt.Accounts.Users(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "list users", err)
		return
	}
	page.Data = usersPage{Users: users, Self: id.User.ID, Roles: auth.Roles, Passkeys: s.opt.Passkeys != nil}
	s.render(w, r, code, "users", page)
}

func (s *Site) userCreate(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	f := r.PostForm
	u, err := s.opt.Accounts.CreateUser(r.Context(), id, f.Get("username"), f.Get("role"), f.Get("email"), client(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.renderUsers(w, r, id, http.StatusUnprocessableEntity, formPage{Error: policy.Reason, Username: f.Get("username")})
	case err != nil && u.ID != "":
		s.opt.Log.Error("activation message not sent", "user", u.ID, "err", err)
		s.renderUsers(w, r, id, http.StatusOK, formPage{Error: "The account was created but the activation message could not be sent. Check the mail settings (the server log has the reason), then use “Send activation again”."})
	case err != nil:
		s.internalError(w, r, "create user", err)
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: "Account " + u.Username + " created. Its owner received an activation link."})
	}
}

var adminActions = map[string]auth.AdminAction{
	"disable":           auth.ActionDisable,
	"reset-totp":        auth.ActionResetTOTP,
	"force-password":    auth.ActionForcePassword,
	"revoke-sessions":   auth.ActionRevokeSessions,
	"resend-activation": auth.ActionResendActivation,
	"enable":            auth.ActionEnable,
}

var actionDone = map[auth.AdminAction]string{
	auth.ActionDisable:          "The account is disabled and signed out everywhere.",
	auth.ActionResetTOTP:        "The second factor is reset; the user enrolls again at the next sign-in.",
	auth.ActionForcePassword:    "The user must choose a new password at the next sign-in.",
	auth.ActionRevokeSessions:   "Every session of the user has ended.",
	auth.ActionResendActivation: "A new activation link is on its way; the previous one no longer works.",
	auth.ActionEnable:           "The account is enabled. Its identity provider's groups decide again at its next sign-in.",
}

func (s *Site) userAction(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	action, ok := adminActions[r.PathValue("action")]
	if !ok {
		s.notFound(w, r)
		return
	}
	err := s.opt.Accounts.Apply(r.Context(), id, r.PathValue("id"), action, client(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.renderUsers(w, r, id, http.StatusUnprocessableEntity, formPage{Error: policy.Reason})
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.internalError(w, r, "admin action", err)
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: actionDone[action]})
	}
}
