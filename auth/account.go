package auth

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/openconsult/openconsult/store"
)

// Enrollment is what the enrollment page shows: the secret as text and as a
// QR code (PNG data URI) of the otpauth:// URL.
type Enrollment struct {
	Secret string
	QRData string
}

// canEnroll: a session forced to enroll, or a full session without TOTP.
func canEnroll(id Identity) bool {
	return id.Stage == StageEnroll || (id.Full() && id.User.TOTPEnabledAt.IsZero())
}

// BeginEnrollment returns the pending TOTP secret, creating one if needed.
// Reloading the page shows the same secret, so an app that already scanned
// it keeps working.
func (s *Service) BeginEnrollment(ctx context.Context, id Identity) (Enrollment, error) {
	if !canEnroll(id) {
		return Enrollment{}, ErrForbidden
	}
	key, err := s.pendingKey(ctx, id.User)
	if err != nil {
		return Enrollment{}, err
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return Enrollment{}, fmt.Errorf("qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, fmt.Errorf("qr code: %w", err)
	}
	return Enrollment{Secret: key.Secret(), QRData: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

func (s *Service) pendingKey(ctx context.Context, u store.User) (*otp.Key, error) {
	if len(u.TOTPSecretEnc) > 0 && u.TOTPEnabledAt.IsZero() {
		secret, err := s.sealer.UnsealString(u.TOTPSecretEnc, totpAAD(u.ID))
		if err != nil {
			return nil, fmt.Errorf("unseal pending secret of %s: %w", u.ID, err)
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
		if err != nil {
			return nil, fmt.Errorf("pending secret of %s: %w", u.ID, err)
		}
		return totp.Generate(totp.GenerateOpts{Issuer: s.issuer, AccountName: u.Username, Period: totpPeriod, Secret: raw})
	}
	key, err := newTOTPKey(s.issuer, u.Username)
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealer.SealString(key.Secret(), totpAAD(u.ID))
	if err != nil {
		return nil, fmt.Errorf("seal totp secret: %w", err)
	}
	if err := s.store.SetTOTPPending(ctx, u.ID, sealed); err != nil {
		return nil, err
	}
	return key, nil
}

// ConfirmEnrollment turns the pending secret on with a first valid code and
// returns the recovery codes (shown once) and the replacement session token.
func (s *Service) ConfirmEnrollment(ctx context.Context, id Identity, code string, c Client) (codes []string, token, stage string, err error) {
	if !canEnroll(id) || len(id.User.TOTPSecretEnc) == 0 {
		return nil, "", "", ErrForbidden
	}
	secret, err := s.sealer.UnsealString(id.User.TOTPSecretEnc, totpAAD(id.User.ID))
	if err != nil {
		return nil, "", "", fmt.Errorf("unseal pending secret of %s: %w", id.User.ID, err)
	}
	step, ok := matchTOTP(secret, code, s.now(), totpOpts)
	if !ok {
		return nil, "", "", ErrBadCode
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return nil, "", "", err
	}
	if err := s.store.EnableTOTP(ctx, id.User.ID, step, hashes, s.now()); err != nil {
		return nil, "", "", err
	}
	if err := s.record(ctx, Event{Type: EventTOTPEnrolled, Success: true, Requester: id.User.ID, Message: "second factor enrolled", Client: c}); err != nil {
		return nil, "", "", err
	}
	stage = s.stageAfterSecondFactor(id.User)
	token, err = s.advance(ctx, id, stage)
	return codes, token, stage, err
}

// ChangePassword sets a new password after checking the current one, the
// policy and the history of the last passwords. It returns the replacement
// session token (a forced change completes sign-in). A wrong current
// password counts toward the account's lockout like a wrong sign-in, so a
// borrowed session cannot be used to guess it; a locked account gets
// ErrLocked.
func (s *Service) ChangePassword(ctx context.Context, id Identity, current, next string, c Client) (string, error) {
	if id.Stage != StageChange && !id.Full() {
		return "", ErrForbidden
	}
	if id.User.PasswordHash == store.NoPassword {
		return "", policyError("policy.sso.password", "Your institution's sign-in service keeps your password; change it there.")
	}
	name := id.User.Username
	if until, err := s.store.SigninLockedUntil(ctx, name); err != nil {
		return "", err
	} else if until.After(s.now()) {
		return "", ErrLocked
	}
	ok, _, err := s.gate.Verify(ctx, NormalizePassword(current), id.User.PasswordHash, s.hash)
	if err != nil && !errors.Is(err, errMalformedHash) {
		return "", err
	}
	if !ok {
		locked, err := s.store.RecordSigninFailure(ctx, name, s.now(), s.policy.MaxFailures, s.policy.LockoutFor)
		if err != nil {
			return "", err
		}
		if err := s.record(ctx, Event{Type: EventPasswordChanged, Success: false, Requester: id.User.ID, Message: "current password wrong", Client: c}); err != nil {
			return "", err
		}
		return "", s.lockedOr(ctx, locked, id.User.ID, c, policyError("policy.current.wrong", "The current password is wrong."))
	}
	hash, err := s.newPasswordHash(ctx, id.User, next)
	if err != nil {
		return "", err
	}
	if err := s.store.ClearSigninFailures(ctx, name); err != nil {
		return "", err
	}
	if err := s.store.SetPassword(ctx, id.User.ID, hash, s.now()); err != nil {
		return "", err
	}
	if err := s.record(ctx, Event{Type: EventPasswordChanged, Success: true, Requester: id.User.ID, Message: "password changed", Client: c}); err != nil {
		return "", err
	}
	return s.advance(ctx, id, StageFull)
}

// newPasswordHash checks a new password against the policy and the history
// and hashes it.
func (s *Service) newPasswordHash(ctx context.Context, u store.User, password string) (string, error) {
	password = NormalizePassword(password)
	if err := s.policy.Password.Check(password, u.Username); err != nil {
		return "", err
	}
	history, err := s.store.PasswordHistory(ctx, u.ID)
	if err != nil {
		return "", err
	}
	for _, old := range history {
		ok, _, err := s.gate.Verify(ctx, password, old, s.hash)
		if err != nil && !errors.Is(err, errMalformedHash) {
			return "", err
		}
		if ok {
			return "", policyError("policy.history", fmt.Sprintf("Choose a password you have not used for your last %d passwords.", store.PasswordHistoryDepth), "count", store.PasswordHistoryDepth)
		}
	}
	return s.gate.Hash(ctx, password, s.hash)
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (s *Service) RecoveryCodesLeft(ctx context.Context, id Identity) (int, error) {
	return s.store.RecoveryCodesLeft(ctx, id.User.ID)
}
