package site

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// sessionAccounts answers Session only; the rest of Accounts is unused.
type sessionAccounts struct {
	Accounts
	id  auth.Identity
	err error
}

func (a sessionAccounts) Session(context.Context, string) (auth.Identity, error) { return a.id, a.err }

// guestConsults answers GuestSession only.
type guestConsults struct {
	Consults
	g   consult.Guest
	err error
}

func (c guestConsults) GuestSession(context.Context, string) (consult.Guest, error) {
	return c.g, c.err
}

// A call page's session check ends the page only for a session that is
// really gone; a failure to check keeps it (its absolute end still holds).
func TestCallPageSessionChecks(t *testing.T) {
	clinician := auth.Identity{User: store.User{ID: "u_doc", Role: "clinician"}, Stage: auth.StageFull}
	otherUser := clinician
	otherUser.User.ID = "u_other"
	halfway := clinician
	halfway.Stage = auth.StageChange
	admin := clinician
	admin.User.Role = "admin"
	dbDown := errors.New("database is locked")
	expires := time.Date(2026, 5, 1, 21, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		check signaling.Session
		want  error // signaling.ErrSessionEnded, dbDown or nil
	}{
		{"clinician signed in", staffSession{accounts: sessionAccounts{id: clinician}, userID: "u_doc"}, nil},
		{"clinician signed out", staffSession{accounts: sessionAccounts{err: auth.ErrNoSession}, userID: "u_doc"}, signaling.ErrSessionEnded},
		{"session now of another account", staffSession{accounts: sessionAccounts{id: otherUser}, userID: "u_doc"}, signaling.ErrSessionEnded},
		{"session back at a sign-in step", staffSession{accounts: sessionAccounts{id: halfway}, userID: "u_doc"}, signaling.ErrSessionEnded},
		{"account no longer a clinician", staffSession{accounts: sessionAccounts{id: admin}, userID: "u_doc"}, signaling.ErrSessionEnded},
		{"clinician check fails", staffSession{accounts: sessionAccounts{err: dbDown}, userID: "u_doc"}, dbDown},
		{"guest present", guestSession{consults: guestConsults{g: consult.Guest{ID: "g_pat", Expires: expires}}, guestID: "g_pat"}, nil},
		{"guest's link withdrawn", guestSession{consults: guestConsults{err: consult.ErrLinkInvalid}, guestID: "g_pat"}, signaling.ErrSessionEnded},
		{"guest's consult ended", guestSession{consults: guestConsults{err: consult.ErrEnded}, guestID: "g_pat"}, signaling.ErrSessionEnded},
		{"another guest's session", guestSession{consults: guestConsults{g: consult.Guest{ID: "g_other"}}, guestID: "g_pat"}, signaling.ErrSessionEnded},
		{"guest check fails", guestSession{consults: guestConsults{err: dbDown}, guestID: "g_pat"}, dbDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			end, err := tt.check.Check(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if _, guest := tt.check.(guestSession); guest && err == nil && !end.Equal(expires) {
				t.Fatalf("guest session ends %v, want %v", end, expires)
			}
		})
	}
}
