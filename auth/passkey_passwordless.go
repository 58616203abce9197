package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/openconsult/openconsult/store"
)

const ceremonyPasswordless = "passwordless"

// ErrPasswordlessOff is returned when the institution did not turn
// sign-in without a password on.
var ErrPasswordlessOff = errors.New("sign-in without a password is off")

// BeginPasswordless starts a sign-in with a discoverable passkey and no
// password. Nobody is signed in yet, so the ceremony belongs to a fresh
// random token that the caller hands the browser in a cookie and that
// FinishPasswordless must be given back.
func (k *Passkeys) BeginPasswordless(ctx context.Context) (options []byte, ceremonyToken string, err error) {
	if !k.passwordless {
		return nil, "", ErrPasswordlessOff
	}
	assertion, sd, err := k.rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, "", fmt.Errorf("begin passwordless sign-in: %w", err)
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, "", err
	}
	if err := k.saveCeremony(ctx, hash, ceremonyPasswordless, sd); err != nil {
		return nil, "", err
	}
	options, err = json.Marshal(assertion)
	return options, token, err
}

// FinishPasswordless verifies a discoverable passkey's assertion: the
// passkey names its account (the user handle), proves possession and, with
// user verification, stands for both factors. A new session starts at the
// stage that follows the second factor.
func (k *Passkeys) FinishPasswordless(ctx context.Context, ceremonyToken string, response []byte, c Client) (token, stage string, err error) {
	if !k.passwordless {
		return "", "", ErrPasswordlessOff
	}
	s := k.svc
	var who *passkeyUser
	pid, reason, err := k.verifyDiscoverable(ctx, ceremonyToken, response, &who)
	if reason != "" {
		s.log.Info("passwordless sign-in refused", "reason", reason, "err", err)
		var userID string
		if who != nil {
			userID = who.u.ID
		}
		if err := s.record(ctx, Event{Type: EventPasskeySignIn, Success: false, Requester: userID, Message: "passkey refused", Client: c,
			Fields: map[string]string{"reason": reason, "method": "passwordless"}}); err != nil {
			return "", "", err
		}
		if who != nil {
			return "", "", s.failSignIn(ctx, who.u.Username, who.u.ID, c, "bad passkey", ErrPasskeyRefused)
		}
		return "", "", ErrPasskeyRefused
	}
	if err != nil {
		return "", "", err
	}
	u := who.u
	if until, err := s.store.SigninLockedUntil(ctx, u.Username); err != nil {
		return "", "", err
	} else if until.After(s.now()) {
		return "", "", ErrLocked
	}
	if err := s.store.ClearSigninFailures(ctx, u.Username); err != nil {
		return "", "", err
	}
	stage = s.stageAfterSecondFactor(u)
	if err := s.record(ctx, Event{Type: EventPasskeySignIn, Success: true, Requester: u.ID, Message: "signed in with a passkey", Client: c,
		Fields: map[string]string{"method": "passwordless", "passkey": pid, "next": stage}}); err != nil {
		return "", "", err
	}
	token, hashed, err := newToken()
	if err != nil {
		return "", "", err
	}
	now := s.now()
	err = s.store.CreateSession(ctx, store.Session{IDHash: hashed, UserID: u.ID, Stage: stage, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.policy.AbsoluteTimeout)})
	return token, stage, err
}

// verifyDiscoverable checks a discoverable assertion and stores the new
// counter; who is set as soon as the assertion names a usable account.
func (k *Passkeys) verifyDiscoverable(ctx context.Context, ceremonyToken string, response []byte, who **passkeyUser) (passkeyID, reason string, err error) {
	if ceremonyToken == "" {
		return "", "no ceremony", ErrPasskeyRefused
	}
	sd, err := k.takeCeremony(ctx, tokenHash(ceremonyToken), ceremonyPasswordless)
	if errors.Is(err, ErrPasskeyRefused) {
		return "", "no ceremony", err
	}
	if err != nil {
		return "", "", err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return "", "malformed response", err
	}
	var lookupErr error
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		pu, err := k.accountOf(ctx, rawID, userHandle)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		*who = pu
		return pu, nil
	}
	_, cred, err := k.rp.ValidatePasskeyLogin(handler, sd, parsed)
	if lookupErr != nil && !errors.Is(lookupErr, ErrPasskeyRefused) {
		return "", "", lookupErr
	}
	if err != nil {
		return "", "verification failed", err
	}
	return k.recordUse(ctx, *who, cred)
}

// accountOf finds the usable account a discoverable credential belongs to.
func (k *Passkeys) accountOf(ctx context.Context, rawID, userHandle []byte) (*passkeyUser, error) {
	key, err := k.store.PasskeyByCredentialID(ctx, rawID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("unknown credential: %w", ErrPasskeyRefused)
	}
	if err != nil {
		return nil, err
	}
	if string(userHandle) != key.UserID {
		return nil, fmt.Errorf("user handle does not match the credential: %w", ErrPasskeyRefused)
	}
	u, err := k.svc.store.UserByID(ctx, key.UserID)
	if err != nil {
		return nil, err
	}
	if !u.DisabledAt.IsZero() || u.ActivatedAt.IsZero() {
		return nil, fmt.Errorf("account not usable: %w", ErrPasskeyRefused)
	}
	return k.user(ctx, u)
}

// PasswordlessOn reports whether the sign-in page offers a passkey alone.
func (k *Passkeys) PasswordlessOn() bool { return k.passwordless }
