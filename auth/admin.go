package auth

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// Roles an account can have.
var Roles = []string{"admin", "clinician"}

// UserSummary is a row of the administrators' user list; it carries no
// sealed field.
type UserSummary struct {
	ID, Username, Role, DisplayName    string
	Active, Disabled, TOTP, MustChange bool
	SSO                                bool // an account of an identity provider, without a password
}

// Users lists accounts for an administrator.
func (s *Service) Users(ctx context.Context, admin Identity) ([]UserSummary, error) {
	if !admin.IsAdmin() {
		return nil, ErrForbidden
	}
	users, err := s.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UserSummary, len(users))
	for i, u := range users {
		out[i] = UserSummary{ID: u.ID, Username: u.Username, Role: u.Role, DisplayName: u.DisplayName, Active: !u.ActivatedAt.IsZero(),
			Disabled: !u.DisabledAt.IsZero(), TOTP: !u.TOTPEnabledAt.IsZero(), MustChange: u.MustChangePassword,
			SSO: u.PasswordHash == store.NoPassword}
	}
	return out, nil
}

// CreateUser adds an account and mails its owner an activation link where
// they choose their own password: nobody, the administrator included, ever
// knows it.
func (s *Service) CreateUser(ctx context.Context, admin Identity, username, role, email string, c Client) (store.User, error) {
	if !admin.IsAdmin() {
		return store.User{}, ErrForbidden
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return store.User{}, err
	}
	if role != "admin" && role != "clinician" {
		return store.User{}, policyError("policy.role", "Choose the role admin or clinician.")
	}
	addr, err := mail.ParseAddress(strings.TrimSpace(email))
	if err != nil || addr.Name != "" {
		return store.User{}, policyError("policy.email", "Enter one e-mail address, like name@example-hospital.org.")
	}
	id, err := ids.New("u")
	if err != nil {
		return store.User{}, err
	}
	sealed, err := s.sealer.SealString(addr.Address, emailAAD(id))
	if err != nil {
		return store.User{}, fmt.Errorf("seal e-mail: %w", err)
	}
	token, hash, err := newToken()
	if err != nil {
		return store.User{}, err
	}
	now := s.now()
	// The unusable hash keeps the column's meaning ("argon2id or nothing")
	// and can never verify.
	u := store.User{ID: id, Username: name, Role: role, PasswordHash: "!", CreatedAt: now, EmailEnc: sealed}
	if err := s.store.CreateUser(ctx, u, hash, now.Add(s.policy.ActivationTTL)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, policyError("policy.username.taken", "That username is taken.")
		}
		return store.User{}, err
	}
	if err := s.record(ctx, Event{Type: EventUserCreated, Success: true, Requester: admin.User.ID, Message: "account created", Client: c,
		Fields: map[string]string{"user": id, "role": role}}); err != nil {
		return store.User{}, err
	}
	subject, body := s.activationMessage(name, c.Lang)(s.link("/" + PurposeActivate + "/" + token))
	if err := s.mail.Send(ctx, addr.Address, subject, body); err != nil {
		return u, fmt.Errorf("send activation message: %w", err)
	}
	return u, nil
}

// activationMessage writes the activation message in lang, the language of
// the administrator who created the account.
func (s *Service) activationMessage(username, lang string) func(link string) (string, string) {
	return func(link string) (string, string) {
		return s.texts.Text(lang, "mail.activate.subject", "service", s.issuer),
			s.texts.Text(lang, "mail.activate.body", "service", s.issuer, "username", username,
				"ttl", s.humanDuration(lang, s.policy.ActivationTTL), "link", link)
	}
}

// sendActivation mails a fresh activation link to an account not yet
// activated, replacing the previous link.
func (s *Service) sendActivation(ctx context.Context, userID, lang string) error {
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	if !u.ActivatedAt.IsZero() {
		return policyError("policy.already.active", "The account is already active.")
	}
	return s.mailLink(ctx, u, PurposeActivate, s.policy.ActivationTTL, s.activationMessage(u.Username, lang))
}

// AdminAction is one thing an administrator does to an account.
type AdminAction string

// The administrator's actions.
const (
	ActionDisable          AdminAction = "disable"
	ActionResetTOTP        AdminAction = "reset-totp"
	ActionForcePassword    AdminAction = "force-password"
	ActionRevokeSessions   AdminAction = "revoke-sessions"
	ActionResendActivation AdminAction = "resend-activation"
	// ActionEnable enables an account of an identity provider again.
	ActionEnable AdminAction = "enable"
)

// Apply carries out an administrator's action on userID.
func (s *Service) Apply(ctx context.Context, admin Identity, userID string, action AdminAction, c Client) error {
	if !admin.IsAdmin() {
		return ErrForbidden
	}
	if _, err := s.store.UserByID(ctx, userID); err != nil {
		return err
	}
	now := s.now()
	var ev Event
	switch action {
	case ActionDisable:
		if userID == admin.User.ID {
			return policyError("policy.disable.self", "You cannot disable your own account.")
		}
		if err := s.store.SetUserFlags(ctx, userID, true, false, now); err != nil {
			return err
		}
		s.closeLive(userID)
		ev = Event{Type: EventUserDisabled, Message: "account disabled"}
	case ActionResetTOTP:
		if err := s.store.ResetTOTP(ctx, userID); err != nil {
			return err
		}
		ev = Event{Type: EventTOTPReset, Message: "second factor reset by an administrator"}
	case ActionForcePassword:
		if err := s.store.SetUserFlags(ctx, userID, false, true, now); err != nil {
			return err
		}
		s.closeLive(userID)
		ev = Event{Type: EventPasswordChanged, Message: "password change forced at next sign-in"}
	case ActionRevokeSessions:
		if _, err := s.store.DeleteUserSessions(ctx, userID); err != nil {
			return err
		}
		s.closeLive(userID)
		ev = Event{Type: EventSessionsRevoked, Message: "all sessions revoked by an administrator"}
	case ActionEnable:
		if err := s.enableExternal(ctx, userID); err != nil {
			return err
		}
		ev = Event{Type: EventUserEnabled, Message: "account enabled; the identity provider's groups decide at its next sign-in"}
	case ActionResendActivation:
		if err := s.sendActivation(ctx, userID, c.Lang); err != nil {
			return err
		}
		ev = Event{Type: EventUserCreated, Message: "activation link sent again"}
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	ev.Success, ev.Requester, ev.Client = true, admin.User.ID, c
	ev.Fields = map[string]string{"user": userID, "action": string(action)}
	return s.record(ctx, ev)
}
