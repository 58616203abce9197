package signaling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Close codes: the type of the last message the server sends a tab before
// it closes the tab's connection, saying why. They are stable; the web app
// shows each its own way and does not reconnect.
const (
	CloseDenied  = "denied"  // the host refused the guest in the lobby
	CloseRemoved = "removed" // the host took the member out
	CloseEnded   = "ended"   // the consult ended for everyone
	CloseRevoked = "revoked" // the account was disabled or signed out, or the guest's link withdrawn
	CloseExpired = "expired" // the tab's session ended (timeout, sign-out)
)

// Records is what a room needs from the consult's records.
type Records interface {
	// Finish marks the consult ended and its links dead; a consult that
	// had already ended is no error.
	Finish(ctx context.Context, consultID string) error
	// DenyGuest ends the session of a guest the host denied or removed
	// and counts the denial against the guest's device.
	DenyGuest(ctx context.Context, consultID, guestID string) error
}

// Session is the sign-in session a tab authenticated with, as the HTTP
// layer checks it.
type Session interface {
	// Check checks the session again, counting the open tab as activity,
	// and returns when the session ends at the latest. It returns
	// ErrSessionEnded when the session no longer holds; any other error is
	// a failure to check.
	Check(ctx context.Context) (end time.Time, err error)
}

// ErrSessionEnded is what Session.Check returns for a session that expired,
// was signed out or revoked, or whose account was disabled.
var ErrSessionEnded = errors.New("the session has ended")

// CloseAccount takes the account userID out of every live consult: each of
// its tabs is told "revoked" and closed at once, and nothing it sent after
// is acted on. The account service calls it after disabling the account,
// revoking its sessions or forcing a password change. It returns how many
// members it took out.
func (h *Hub) CloseAccount(userID string) int {
	n := 0
	for _, r := range h.snapshot() {
		r.mu.Lock()
		if m, ok := r.members[userID]; ok && m.Kind != "guest" {
			r.dismissLocked(m, CloseRevoked, "account signed out")
			n++
		}
		r.mu.Unlock()
	}
	return n
}

// CloseLink takes the guests who joined a consult with linkID out of its
// live room, after the link was withdrawn and their sessions ended. It
// returns how many it took out.
func (h *Hub) CloseLink(consultID, linkID string) int {
	r := h.existing(consultID)
	if r == nil || linkID == "" {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.members {
		if m.Kind == "guest" && m.Link == linkID {
			r.dismissLocked(m, CloseRevoked, "link withdrawn")
			n++
		}
	}
	return n
}

// endConsultLocked records the end of the consult (ended, links dead),
// then tells every member and closes their tabs, auditing it once.
func (r *Room) endConsultLocked(ctx context.Context, by string) error {
	if r.deps.Records == nil {
		return errors.New("no consult records to end the consult in")
	}
	ctx, cancel := context.WithTimeout(ctx, r.deps.IOTimeout)
	defer cancel()
	if err := r.deps.Records.Finish(ctx, r.ID); err != nil {
		return fmt.Errorf("end consult %s: %w", r.ID, err)
	}
	return r.endLocked(by, "ended by the host")
}

// dropLocked tells p why it goes, closes its tab and takes it out of the
// room.
func (r *Room) dropLocked(p *Member, kind string) {
	p.send(encode(closingMsg{Type: kind}))
	if p.conn != nil {
		p.conn.Close()
	}
	p.dropMediaLocked()
	delete(r.members, p.ID)
	r.forgetAdmission(p.ID)
	r.broadcastRoster()
	r.broadcastLobby()
	r.recordingMemberLeftLocked()
}

// snapshot lists the live rooms.
func (h *Hub) snapshot() []*Room {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := make([]*Room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

// dismissLocked takes m out of the room because its right to be there
// ended elsewhere. Unlike a host's action it does not wait for the audit
// record: the change it enforces is already committed.
func (r *Room) dismissLocked(m *Member, kind, message string) {
	if err := r.audit(EventAborted, m.ID, message, map[string]string{"reason": kind}); err != nil {
		r.deps.Log.Error("audit", "consult", r.ID, "member", m.ID, "err", err)
	}
	r.deps.Log.Info("member dismissed", "consult", r.ID, "member", m.ID, "reason", kind)
	r.dropLocked(m, kind)
}

// sessionEnded closes tab c of m, whose session ended, and takes m out of
// the room when c is its current tab.
func (h *Hub) sessionEnded(r *Room, m *Member, c Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.ID] != m || m.conn != c {
		c.Close() // an older tab, or a member already gone
		return
	}
	r.dismissLocked(m, CloseExpired, "session ended")
}

// watchSession checks the session of tab c when it opens, then again every
// SessionCheck, and closes the tab the moment the session's absolute end
// passes or a check finds it gone, until the returned stop is called. A
// failure to check (the database is away) keeps the tab until the end it
// last learnt. The checks run on a timer, so an open tab holds no goroutine
// for them.
func (h *Hub) watchSession(r *Room, m *Member, c Conn, s Session) (stop func()) {
	if s == nil {
		return func() {}
	}
	return h.watchSessionFunc(r.ID, m.ID, s, func() { h.sessionEnded(r, m, c) })
}

// watchSessionFunc checks session s of a tab of memberID as watchSession
// does, and calls ended when the session ends.
func (h *Hub) watchSessionFunc(consultID, memberID string, s Session, ended func()) (stop func()) {
	if s == nil {
		return func() {}
	}
	w := &sessionWatch{h: h, consult: consultID, member: memberID, ended: ended, s: s}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(0, w.check)
	return w.stop
}

// sessionWatch is the state of one tab's session checks.
type sessionWatch struct {
	h       *Hub
	consult string
	member  string
	ended   func() // takes the tab out once its session ended
	s       Session

	mu      sync.Mutex
	timer   *time.Timer // the next check
	end     time.Time   // the session's end as last learnt; zero before
	stopped bool
}

func (w *sessionWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

// check runs on the timer: it closes the tab once the end it learnt has
// passed, and otherwise asks the session and schedules the next check.
func (w *sessionWatch) check() {
	w.mu.Lock()
	stopped, end := w.stopped, w.end
	w.mu.Unlock()
	if stopped {
		return
	}
	if !end.IsZero() && !time.Now().Before(end) {
		w.ended()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.h.deps.IOTimeout)
	next, err := w.s.Check(ctx)
	cancel()
	switch {
	case errors.Is(err, ErrSessionEnded), err == nil && !time.Now().Before(next):
		w.ended()
		return
	case err != nil:
		w.h.deps.Log.Warn("session check failed", "consult", w.consult, "member", w.member, "err", err)
	default:
		end = next
	}
	wait := w.h.deps.SessionCheck
	if !end.IsZero() {
		wait = min(wait, time.Until(end))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.end = end
		w.timer = time.AfterFunc(wait, w.check)
	}
}

// refusal is the last message of a tab Join refused: why, when the tab
// must not come back; an internal error, after which it may retry, when
// the room could not take it (its audit record failed).
func refusal(err error) []byte {
	switch {
	case errors.Is(err, ErrBarred):
		return encode(closingMsg{Type: CloseDenied})
	case errors.Is(err, ErrEnded):
		return encode(closingMsg{Type: CloseEnded})
	default:
		return encode(errorMsg{Type: "error", ProtoError: *ErrInternal})
	}
}
