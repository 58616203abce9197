package auth

import (
	"context"
	"errors"

	"github.com/openconsult/openconsult/store"
)

// ErrPasskeyRequired is returned when an administrator who has a passkey
// offers a code instead, where the institution requires passkeys for
// administrators.
var ErrPasskeyRequired = errors.New("administrators sign in with a passkey")

// codeRefused reports whether the account must use a passkey rather than a
// code at the second-factor step: an administrator with a passkey, where
// the institution requires one.
func (k *Passkeys) codeRefused(ctx context.Context, u store.User) (bool, error) {
	if !k.adminsNeedPasskey || u.Role != "admin" {
		return false, nil
	}
	return k.Has(ctx, u.ID)
}

// VerifyCode is VerifySecondFactor with the institution's passkey rule:
// where passkeys are required for administrators, an administrator who has
// one cannot pass with a TOTP or recovery code. The refusal is audited and
// counts toward the lockout like a wrong code.
func (k *Passkeys) VerifyCode(ctx context.Context, id Identity, code string, c Client) (token, stage string, err error) {
	if id.Stage != StageSecondFactor {
		return "", "", ErrForbidden
	}
	refused, err := k.codeRefused(ctx, id.User)
	if err != nil {
		return "", "", err
	}
	if !refused {
		return k.svc.VerifySecondFactor(ctx, id, code, c)
	}
	s := k.svc
	if err := s.record(ctx, Event{Type: EventSignIn, Success: false, Requester: id.User.ID, Message: "code refused: passkey required", Client: c,
		Fields: map[string]string{"reason": "passkey required"}}); err != nil {
		return "", "", err
	}
	return "", "", s.failSignIn(ctx, id.User.Username, id.User.ID, c, "passkey required", ErrPasskeyRequired)
}

// AdminNeedsPasskey reports a fully signed-in administrator who has yet to
// register the passkey the institution requires; administration waits
// until they have.
func (k *Passkeys) AdminNeedsPasskey(ctx context.Context, id Identity) (bool, error) {
	if !k.adminsNeedPasskey || !id.IsAdmin() {
		return false, nil
	}
	has, err := k.Has(ctx, id.User.ID)
	return !has, err
}
