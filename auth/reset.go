package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/store"
)

// Purposes of mailed single-use links.
const (
	PurposeReset    = "reset"
	PurposeActivate = "activate"
)

// RequestReset mails a password-reset link when username names an active
// account with an e-mail address. It returns nil in every other case too, so
// the page cannot be used to find usernames.
func (s *Service) RequestReset(ctx context.Context, username string, c Client) error {
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil
	}
	u, err := s.store.UserByUsername(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !u.DisabledAt.IsZero() || u.ActivatedAt.IsZero() || len(u.EmailEnc) == 0 {
		return nil
	}
	if err := s.record(ctx, Event{Type: EventPasswordReset, Success: true, Requester: u.ID, Message: "reset link sent", Client: c}); err != nil {
		return err
	}
	return s.mailLink(ctx, u, PurposeReset, s.policy.ResetTTL, func(link string) (string, string) {
		return s.texts.Text(c.Lang, "mail.reset.subject", "service", s.issuer),
			s.texts.Text(c.Lang, "mail.reset.body", "service", s.issuer, "username", u.Username,
				"ttl", s.humanDuration(c.Lang, s.policy.ResetTTL), "link", link)
	})
}

// mailLink issues a single-use link of purpose for u, replacing the user's
// unused links of that purpose, and mails it to the user's address.
func (s *Service) mailLink(ctx context.Context, u store.User, purpose string, ttl time.Duration, compose func(link string) (subject, body string)) error {
	addr, err := s.sealer.UnsealString(u.EmailEnc, emailAAD(u.ID))
	if err != nil {
		return fmt.Errorf("unseal e-mail of %s: %w", u.ID, err)
	}
	token, hash, err := newToken()
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.store.CreateUserToken(ctx, hash, u.ID, purpose, now, now.Add(ttl)); err != nil {
		return err
	}
	subject, body := compose(s.link("/" + purpose + "/" + token))
	if err := s.mail.Send(ctx, addr, subject, body); err != nil {
		return fmt.Errorf("send %s message: %w", purpose, err)
	}
	return nil
}

// LinkUsable reports whether a mailed link can still be used.
func (s *Service) LinkUsable(ctx context.Context, token, purpose string) (bool, error) {
	if !plausibleToken(token) {
		return false, nil
	}
	_, err := s.store.UserTokenOwner(ctx, tokenHash(token), purpose, s.now())
	if errors.Is(err, store.ErrTokenInvalid) {
		return false, nil
	}
	return err == nil, err
}

// SetPasswordWithLink redeems a reset or activation link. Every session of
// the account ends.
func (s *Service) SetPasswordWithLink(ctx context.Context, token, purpose, password string, c Client) error {
	if !plausibleToken(token) {
		return ErrLinkInvalid
	}
	hash := tokenHash(token)
	userID, err := s.store.UserTokenOwner(ctx, hash, purpose, s.now())
	if errors.Is(err, store.ErrTokenInvalid) {
		return ErrLinkInvalid
	}
	if err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	pwHash, err := s.newPasswordHash(ctx, u, password)
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordWithToken(ctx, hash, purpose, userID, pwHash, s.now()); err != nil {
		if errors.Is(err, store.ErrTokenInvalid) {
			return ErrLinkInvalid
		}
		return err
	}
	s.closeLive(userID)
	ev := Event{Type: EventPasswordReset, Success: true, Requester: userID, Message: "password reset with a mailed link", Client: c,
		Fields: map[string]string{"purpose": purpose}}
	if purpose == PurposeActivate {
		ev.Type, ev.Message = EventUserActivated, "account activated"
	}
	return s.record(ctx, ev)
}
