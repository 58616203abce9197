package auth

import (
	"context"
	"fmt"
)

// RemoveAll deletes every passkey of userID on an administrator's request,
// as a TOTP reset does for the code: for a lost or stolen device. The
// user's sessions are left alone; the administrator can end them too.
func (k *Passkeys) RemoveAll(ctx context.Context, admin Identity, userID string, c Client) (int, error) {
	if !admin.IsAdmin() {
		return 0, ErrForbidden
	}
	if _, err := k.svc.store.UserByID(ctx, userID); err != nil {
		return 0, err
	}
	n, err := k.store.DeleteUserPasskeys(ctx, userID)
	if err != nil {
		return 0, err
	}
	if err := k.svc.record(ctx, Event{Type: EventPasskeyRemoved, Success: true, Requester: admin.User.ID, Message: "passkeys removed by an administrator", Client: c,
		Fields: map[string]string{"user": userID, "passkeys": fmt.Sprint(n)}}); err != nil {
		return 0, err
	}
	return n, nil
}
