package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/store"
)

// SSOStore is what single sign-on needs from persistence beyond AccountStore.
type SSOStore interface {
	SSOLinkOwner(ctx context.Context, provider, subject string) (string, error)
	CreateSSOUser(ctx context.Context, u store.User, provider, subject string) error
	SetUserRole(ctx context.Context, userID, role string) error
	EnableSSOUser(ctx context.Context, userID string) (bool, error)
	SSOLinkProvider(ctx context.Context, userID string) (string, error)
}

// Audit event types of single sign-on.
const (
	EventSSOSignIn   = "auth.sso.signin"
	EventRoleChanged = "user.role.changed"
	EventUserEnabled = "user.enabled"
)

// ErrSSORefused is returned when an identity provider's answer does not
// open a session; the audit log holds the reason.
var ErrSSORefused = errors.New("single sign-on refused")

// External is a person an identity provider vouched for, after the
// provider's answer was verified.
type External struct {
	Provider string // configured provider name
	Subject  string // the provider's stable, never reassigned user id
	Username string // preferred username for an account created now
	Role     string // role the provider's groups map to; "" when none
}

// SignInExternal opens a full session for a verified external identity: the
// identity provider is responsible for both factors. The account is created
// at the first sign-in, its role follows the provider's groups at every
// sign-in, and it is disabled when the provider no longer puts it in a
// mapped group.
func (s *Service) SignInExternal(ctx context.Context, ext External, c Client) (token, stage string, err error) {
	if s.sso == nil {
		return "", "", fmt.Errorf("single sign-on: no store configured")
	}
	u, err := s.externalAccount(ctx, ext, c)
	if err != nil {
		return "", "", err
	}
	if err := s.record(ctx, Event{Type: EventSSOSignIn, Success: true, Requester: u.ID, Message: "signed in through the identity provider", Client: c,
		Fields: map[string]string{"provider": ext.Provider, "role": u.Role}}); err != nil {
		return "", "", err
	}
	token, hashed, err := newToken()
	if err != nil {
		return "", "", err
	}
	now := s.now()
	err = s.store.CreateSession(ctx, store.Session{IDHash: hashed, UserID: u.ID, Stage: StageFull, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.policy.AbsoluteTimeout)})
	return token, StageFull, err
}

// externalAccount returns the account linked to ext, creating it, changing
// its role or disabling it as the provider's groups say.
func (s *Service) externalAccount(ctx context.Context, ext External, c Client) (store.User, error) {
	id, err := s.sso.SSOLinkOwner(ctx, ext.Provider, ext.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return s.createExternal(ctx, ext, c)
	}
	if err != nil {
		return store.User{}, err
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	switch {
	case !u.DisabledAt.IsZero():
		return store.User{}, s.FailExternal(ctx, ext.Provider, "account disabled", u.ID, c)
	case ext.Role == "":
		return store.User{}, s.disableExternal(ctx, ext, u, c)
	case ext.Role != u.Role:
		if err := s.sso.SetUserRole(ctx, u.ID, ext.Role); err != nil {
			return store.User{}, err
		}
		if err := s.record(ctx, Event{Type: EventRoleChanged, Success: true, Requester: u.ID, Message: "role follows the identity provider's groups", Client: c,
			Fields: map[string]string{"user": u.ID, "provider": ext.Provider, "from": u.Role, "to": ext.Role}}); err != nil {
			return store.User{}, err
		}
		u.Role = ext.Role
	}
	return u, nil
}

func (s *Service) createExternal(ctx context.Context, ext External, c Client) (store.User, error) {
	if ext.Role == "" {
		return store.User{}, s.FailExternal(ctx, ext.Provider, "no mapped group", "", c)
	}
	name, err := NormalizeUsername(ext.Username)
	if err != nil {
		return store.User{}, s.FailExternal(ctx, ext.Provider, "username unusable", "", c)
	}
	id, err := ids.New("u")
	if err != nil {
		return store.User{}, err
	}
	now := s.now()
	u := store.User{ID: id, Username: name, Role: ext.Role, PasswordHash: store.NoPassword, CreatedAt: now, ActivatedAt: now}
	if err := s.sso.CreateSSOUser(ctx, u, ext.Provider, ext.Subject); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// A local account of that name is never taken over.
			return store.User{}, s.FailExternal(ctx, ext.Provider, "username taken", "", c)
		}
		return store.User{}, err
	}
	s.log.Info("account created by single sign-on", "user", u.ID, "provider", ext.Provider, "role", u.Role)
	if err := s.record(ctx, Event{Type: EventUserCreated, Success: true, Requester: u.ID, Message: "account created at first single sign-on", Client: c,
		Fields: map[string]string{"user": u.ID, "provider": ext.Provider, "role": u.Role}}); err != nil {
		return store.User{}, err
	}
	return u, nil
}

func (s *Service) disableExternal(ctx context.Context, ext External, u store.User, c Client) error {
	if err := s.store.SetUserFlags(ctx, u.ID, true, false, s.now()); err != nil {
		return err
	}
	s.closeLive(u.ID)
	if err := s.record(ctx, Event{Type: EventUserDisabled, Success: true, Requester: u.ID, Message: "no longer in a mapped group of the identity provider", Client: c,
		Fields: map[string]string{"user": u.ID, "provider": ext.Provider}}); err != nil {
		return err
	}
	return s.FailExternal(ctx, ext.Provider, "no mapped group", u.ID, c)
}

// enableExternal enables again an account of an identity provider, as an
// administrator decided (after its groups were restored, say). The
// provider's groups decide again at its next sign-in.
func (s *Service) enableExternal(ctx context.Context, userID string) error {
	if s.sso == nil {
		return policyError("policy.enable.not.sso", "Only accounts of an identity provider can be enabled.")
	}
	changed, err := s.sso.EnableSSOUser(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return policyError("policy.enable.not.sso", "Only accounts of an identity provider can be enabled.")
	case err != nil:
		return err
	case !changed:
		return policyError("policy.enable.not.disabled", "The account is not disabled.")
	}
	return nil
}

// ExternalProvider names the identity provider the session token's account
// signs in with; "" for a local account or no session.
func (s *Service) ExternalProvider(ctx context.Context, token string) (string, error) {
	if s.sso == nil || token == "" {
		return "", nil
	}
	id, err := s.Session(ctx, token)
	if errors.Is(err, ErrNoSession) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	provider, err := s.sso.SSOLinkProvider(ctx, id.User.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return provider, err
}

// FailExternal audits a refused single sign-on and returns ErrSSORefused.
// reason is a short fixed phrase, never content of the provider's answer.
func (s *Service) FailExternal(ctx context.Context, provider, reason, userID string, c Client) error {
	if err := s.record(ctx, Event{Type: EventSSOSignIn, Success: false, Requester: userID, Message: "single sign-on refused", Client: c,
		Fields: map[string]string{"provider": provider, "reason": reason}}); err != nil {
		return err
	}
	return ErrSSORefused
}

// passwordSignInAllowed: local password sign-in is on, or the account is a
// named break-glass account.
func (s *Service) passwordSignInAllowed(username string) bool {
	return !s.policy.PasswordSignInOff || slices.Contains(s.policy.BreakGlass, username)
}
