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
	u, err := s.opt.Accounts.CreateUser(r.Context(), id, f.Get("username"), f.Get("role"), f.Get("email"), s.mailClient(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.renderUsers(w, r, id, http.StatusUnprocessableEntity, formPage{Error: s.policyText(r, policy), Username: f.Get("username")})
	case err != nil && u.ID != "":
		s.opt.Log.Error("activation message not sent", "user", u.ID, "err", err)
		s.renderUsers(w, r, id, http.StatusOK, formPage{Error: s.text(r, "users.created.mailfail")})
	case err != nil:
		s.internalError(w, r, "create user", err)
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: s.text(r, "users.created", "username", u.Username)})
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

// actionDone names the message that confirms each action.
var actionDone = map[auth.AdminAction]string{
	auth.ActionDisable:          "users.done.disable",
	auth.ActionResetTOTP:        "users.done.reset.totp",
	auth.ActionForcePassword:    "users.done.force.password",
	auth.ActionRevokeSessions:   "users.done.revoke",
	auth.ActionResendActivation: "users.done.resend",
	auth.ActionEnable:           "users.done.enable",
}

func (s *Site) userAction(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	action, ok := adminActions[r.PathValue("action")]
	if !ok {
		s.notFound(w, r)
		return
	}
	err := s.opt.Accounts.Apply(r.Context(), id, r.PathValue("id"), action, s.mailClient(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.renderUsers(w, r, id, http.StatusUnprocessableEntity, formPage{Error: s.policyText(r, policy)})
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.internalError(w, r, "admin action", err)
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: s.text(r, actionDone[action])})
	}
}

// userDisplayName changes the name an account shows to patients.
func (s *Site) userDisplayName(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	err := s.opt.Accounts.SetDisplayName(r.Context(), id, r.PathValue("id"), r.PostForm.Get("display_name"), client(r))
	var policy *auth.PolicyError
	switch {
	case errors.As(err, &policy):
		s.renderUsers(w, r, id, http.StatusUnprocessableEntity, formPage{Error: s.policyText(r, policy)})
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.internalError(w, r, "set display name", err)
	default:
		s.renderUsers(w, r, id, http.StatusOK, formPage{Notice: s.text(r, "users.done.display")})
	}
}
