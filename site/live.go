package site

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/signaling"
)

// staffSession is the session a clinician's call page opened its
// WebSocket with; the hub checks it while the page is open, so a session
// that expires or is signed out closes the page.
type staffSession struct {
	accounts Accounts
	token    string
	userID   string
}

// Check implements signaling.Session. The check counts as activity: an
// open call keeps the session from idling out, never past its absolute end.
func (s staffSession) Check(ctx context.Context) (time.Time, error) {
	id, err := s.accounts.Session(ctx, s.token)
	if errors.Is(err, auth.ErrNoSession) {
		return time.Time{}, signaling.ErrSessionEnded
	}
	if err != nil {
		return time.Time{}, err
	}
	if id.User.ID != s.userID || !id.Full() || id.User.Role != "clinician" {
		return time.Time{}, signaling.ErrSessionEnded
	}
	return id.Expires(), nil
}

// guestSession is the consult-scoped session a guest's page opened its
// WebSocket with.
type guestSession struct {
	consults Consults
	token    string
	guestID  string
}

// Check implements signaling.Session.
func (g guestSession) Check(ctx context.Context) (time.Time, error) {
	gs, err := g.consults.GuestSession(ctx, g.token)
	if errors.Is(err, consult.ErrLinkInvalid) || errors.Is(err, consult.ErrEnded) {
		return time.Time{}, signaling.ErrSessionEnded
	}
	if err != nil {
		return time.Time{}, err
	}
	if gs.ID != g.guestID {
		return time.Time{}, signaling.ErrSessionEnded
	}
	return gs.Expires, nil
}

// device returns the browser's device cookie, setting a new one when it
// has none.
func (s *Site) device(w http.ResponseWriter, r *http.Request) (string, error) {
	if c, err := r.Cookie(deviceCookie); err == nil && c.Value != "" {
		return c.Value, nil
	}
	id, err := consult.NewDeviceID()
	if err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(deviceCookieAge.Seconds())})
	return id, nil
}
