package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/store"
)

// Session stages: what a session may do until the next step is done.
const (
	StageSecondFactor = "mfa"    // password checked, code pending
	StageEnroll       = "enroll" // must set up the second factor first
	StageChange       = "change" // must choose a new password first
	StageFull         = "full"
)

// Identity is the verified owner of a request's session.
type Identity struct {
	User    store.User
	Stage   string
	session store.Session
}

// Full reports whether every sign-in step is done.
func (id Identity) Full() bool { return id.Stage == StageFull }

// Expires is when the session ends whatever the activity.
func (id Identity) Expires() time.Time { return id.session.ExpiresAt }

// IsAdmin reports a fully signed-in administrator.
func (id Identity) IsAdmin() bool { return id.Full() && id.User.Role == "admin" }

// newToken returns a 256-bit random token and the hash stored in its place.
func newToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("random token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token), nil
}

// SignIn checks a username and password. On success it returns a new session
// token whose stage says what must happen next. Unknown users, wrong
// passwords, disabled and not yet activated accounts all give
// ErrBadCredentials after the same work; a locked username (known or not)
// gives ErrLocked.
func (s *Service) SignIn(ctx context.Context, username, password string, c Client) (token, stage string, err error) {
	name, nameErr := NormalizeUsername(username)
	if nameErr != nil {
		name = "" // still do the work below: the timing must not tell
	}
	now := s.now()
	until, err := s.store.SigninLockedUntil(ctx, name)
	if err != nil {
		return "", "", err
	}
	u, uerr := s.store.UserByUsername(ctx, name)
	if uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
		return "", "", uerr
	}
	hash := s.dummyHash
	if uerr == nil && u.PasswordHash != store.NoPassword {
		hash = u.PasswordHash
	}
	ok, rehash, verr := s.gate.Verify(ctx, NormalizePassword(password), hash, s.hash)
	if verr != nil && !errors.Is(verr, errMalformedHash) {
		return "", "", verr // busy: no hash ran, so nothing counts
	}
	if verr != nil {
		s.log.Error("stored password hash unreadable", "user", u.ID, "err", verr)
		ok = false
	}
	if until.After(now) {
		return "", "", s.failSignIn(ctx, name, u.ID, c, "locked", ErrLocked)
	}
	if uerr != nil || !ok || u.PasswordHash == store.NoPassword || !u.DisabledAt.IsZero() || u.ActivatedAt.IsZero() {
		return "", "", s.failSignIn(ctx, name, u.ID, c, "bad credentials", ErrBadCredentials)
	}
	if !s.passwordSignInAllowed(name) {
		return "", "", s.failSignIn(ctx, name, u.ID, c, "password sign-in off", ErrBadCredentials)
	}
	if err := s.store.ClearSigninFailures(ctx, name); err != nil {
		return "", "", err
	}
	if rehash {
		if h, err := s.gate.Hash(ctx, NormalizePassword(password), s.hash); err == nil {
			// The history keeps the old hash too: same password, so reuse
			// checks are unaffected.
			if err := s.store.SetPassword(ctx, u.ID, h, u.PasswordChangedAt); err != nil {
				s.log.Warn("password rehash failed", "user", u.ID, "err", err)
			}
		}
	}
	stage = s.stageAfterPassword(u)
	if err := s.record(ctx, Event{Type: EventSignIn, Success: true, Requester: u.ID, Message: "password accepted", Client: c,
		Fields: map[string]string{"next": stage}}); err != nil {
		return "", "", err
	}
	token, hashed, err := newToken()
	if err != nil {
		return "", "", err
	}
	err = s.store.CreateSession(ctx, store.Session{IDHash: hashed, UserID: u.ID, Stage: stage, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.policy.AbsoluteTimeout)})
	return token, stage, err
}

func (s *Service) stageAfterPassword(u store.User) string {
	switch {
	case !u.TOTPEnabledAt.IsZero():
		return StageSecondFactor
	case s.policy.RequireTOTP:
		return StageEnroll
	case s.mustChange(u):
		return StageChange
	default:
		return StageFull
	}
}

// failSignIn counts the failure, locks at the limit, audits, and returns
// the error the user sees.
func (s *Service) failSignIn(ctx context.Context, name, userID string, c Client, reason string, shown error) error {
	locked, err := s.store.RecordSigninFailure(ctx, name, s.now(), s.policy.MaxFailures, s.policy.LockoutFor)
	if err != nil {
		return err
	}
	fields := map[string]string{"reason": reason}
	if err := s.record(ctx, Event{Type: EventSignIn, Success: false, Requester: userID, Message: "sign-in refused", Client: c, Fields: fields}); err != nil {
		return err
	}
	return s.lockedOr(ctx, locked, userID, c, shown)
}

// lockedOr audits a lockout the last failure caused and returns ErrLocked,
// or returns shown when the failure did not lock.
func (s *Service) lockedOr(ctx context.Context, locked bool, userID string, c Client, shown error) error {
	if !locked {
		return shown
	}
	s.log.Info("sign-in locked out", "user", userID, "for", s.policy.LockoutFor.String())
	if err := s.record(ctx, Event{Type: EventLockout, Success: true, Requester: userID, Message: "too many failed sign-ins", Client: c,
		Fields: map[string]string{"minutes": fmt.Sprint(int(s.policy.LockoutFor.Minutes()))}}); err != nil {
		return err
	}
	return ErrLocked
}

// Session returns the identity behind a session token, enforcing the idle
// and absolute timeouts and ending sessions of disabled accounts.
func (s *Service) Session(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoSession
	}
	hash := tokenHash(token)
	sess, err := s.store.SessionByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrNoSession
	}
	if err != nil {
		return Identity{}, err
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= s.policy.IdleTimeout || sess.UserID == "" {
		if sess.UserID != "" {
			_ = s.store.DeleteSession(ctx, hash)
		}
		return Identity{}, ErrNoSession
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil || !u.DisabledAt.IsZero() {
		_ = s.store.DeleteSession(ctx, hash)
		return Identity{}, ErrNoSession
	}
	// One write a minute is precise enough for a 30-minute idle timeout;
	// a short one is renewed at half its length.
	if now.Sub(sess.LastSeenAt) >= min(time.Minute, s.policy.IdleTimeout/2) {
		if err := s.store.TouchSession(ctx, hash, now); err != nil {
			return Identity{}, err
		}
	}
	return Identity{User: u, Stage: sess.Stage, session: sess}, nil
}

// advance replaces the session with a fresh token at the next stage.
func (s *Service) advance(ctx context.Context, id Identity, stage string) (string, error) {
	token, hash, err := newToken()
	if err != nil {
		return "", err
	}
	now := s.now()
	next := id.session
	next.IDHash, next.Stage, next.LastSeenAt = hash, stage, now
	if err := s.store.ReplaceSession(ctx, id.session.IDHash, next); err != nil {
		return "", err
	}
	return token, nil
}

func (s *Service) stageAfterSecondFactor(u store.User) string {
	if s.mustChange(u) {
		return StageChange
	}
	return StageFull
}

// mustChange: an administrator asked for a new password, or the password
// is older than the institution's maximum age.
func (s *Service) mustChange(u store.User) bool {
	maxAge := s.policy.Password.MaxAge
	expired := maxAge > 0 && !u.PasswordChangedAt.IsZero() && s.now().Sub(u.PasswordChangedAt) >= maxAge
	return u.MustChangePassword || expired
}

// VerifySecondFactor accepts a TOTP code or a recovery code for a session at
// StageSecondFactor and returns the replacement session token. Wrong codes
// count toward the lockout like wrong passwords.
func (s *Service) VerifySecondFactor(ctx context.Context, id Identity, code string, c Client) (string, string, error) {
	if id.Stage != StageSecondFactor {
		return "", "", ErrForbidden
	}
	if until, err := s.store.SigninLockedUntil(ctx, id.User.Username); err != nil {
		return "", "", err
	} else if until.After(s.now()) {
		return "", "", ErrLocked
	}
	method, err := s.checkCode(ctx, id.User, code)
	if err != nil {
		if errors.Is(err, ErrBadCode) {
			return "", "", s.failSignIn(ctx, id.User.Username, id.User.ID, c, "bad second factor", ErrBadCode)
		}
		return "", "", err
	}
	if err := s.store.ClearSigninFailures(ctx, id.User.Username); err != nil {
		return "", "", err
	}
	stage := s.stageAfterSecondFactor(id.User)
	if err := s.record(ctx, Event{Type: EventSignIn, Success: true, Requester: id.User.ID, Message: "second factor accepted", Client: c,
		Fields: map[string]string{"method": method}}); err != nil {
		return "", "", err
	}
	token, err := s.advance(ctx, id, stage)
	return token, stage, err
}

func (s *Service) checkCode(ctx context.Context, u store.User, code string) (method string, err error) {
	if looksLikeRecoveryCode(code) {
		if err := s.store.UseRecoveryCode(ctx, u.ID, recoveryHash(code), s.now()); err != nil {
			if errors.Is(err, store.ErrReplay) {
				return "", ErrBadCode
			}
			return "", err
		}
		return "recovery code", nil
	}
	secret, err := s.sealer.UnsealString(u.TOTPSecretEnc, totpAAD(u.ID))
	if err != nil {
		return "", fmt.Errorf("unseal totp secret of %s: %w", u.ID, err)
	}
	step, ok := matchTOTP(secret, code, s.now(), totpOpts)
	if !ok {
		return "", ErrBadCode
	}
	if err := s.store.AcceptTOTPStep(ctx, u.ID, step); err != nil {
		if errors.Is(err, store.ErrReplay) {
			return "", ErrBadCode
		}
		return "", err
	}
	return "totp", nil
}

// SignOut ends one session.
func (s *Service) SignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return s.store.DeleteSession(ctx, tokenHash(token))
}

// SignOutEverywhere ends every session of the identity's user.
func (s *Service) SignOutEverywhere(ctx context.Context, id Identity, c Client) error {
	n, err := s.store.DeleteUserSessions(ctx, id.User.ID)
	if err != nil {
		return err
	}
	s.closeLive(id.User.ID)
	return s.record(ctx, Event{Type: EventSessionsRevoked, Success: true, Requester: id.User.ID, Message: "signed out everywhere", Client: c,
		Fields: map[string]string{"user": id.User.ID, "sessions": fmt.Sprint(n)}})
}
