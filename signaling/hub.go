package signaling

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Participant is who is joining, as the HTTP layer authenticated them: a
// signed-in clinician (Host) or a guest holding a consult-scoped session.
type Participant struct {
	ID   string
	Name string
	Kind string // "clinician" or "guest"
	Host bool
	Link string // the link a guest joined with
	// Session is the sign-in session the tab authenticated with; the hub
	// checks it while the tab is open and closes the tab when it ends.
	// nil binds the tab to no session.
	Session Session
	// Check is the result of the guest's connectivity check on the join
	// page, as CheckResult normalizes it; the hosts' lobby shows it.
	Check string
	// NoMic says the guest's browser gave no microphone: the hosts' lobby
	// warns that the clinician will not hear them.
	NoMic bool
}

// Results of the join page's connectivity check.
var checkResults = map[string]bool{"direct": true, "relay": true, "failed": true, "unknown": true}

// CheckResult returns s when it is a result of the join page's
// connectivity check (direct, relay, failed or unknown), else "".
func CheckResult(s string) string {
	if checkResults[s] {
		return s
	}
	return ""
}

// Errors of Join.
var (
	ErrEnded  = errors.New("the consult has ended")
	ErrBarred = errors.New("denied or removed from this consult")
)

// Hub holds the live rooms of this server.
type Hub struct {
	deps RoomDeps

	mu    sync.Mutex
	rooms map[string]*Room
	links sync.WaitGroup // media link goroutines
	socks *sockets       // WebSocket goroutines
}

// NewHub returns a hub; Run must be called to expire members that left.
func NewHub(deps RoomDeps) *Hub {
	h := &Hub{deps: deps, rooms: map[string]*Room{}, socks: newSockets()}
	h.deps.links = &h.links
	if h.deps.Now == nil {
		h.deps.Now = time.Now
	}
	if h.deps.SFUMinParticipants <= 0 {
		h.deps.SFUMinParticipants = 3
	}
	if h.deps.IOTimeout <= 0 {
		h.deps.IOTimeout = 2 * time.Second
	}
	if h.deps.SessionCheck <= 0 {
		h.deps.SessionCheck = time.Minute
	}
	if h.deps.LargeMessages == nil {
		h.deps.LargeMessages, _ = NewLargeMessages(DefaultLargeMessageBudget, nil)
	}
	return h
}

func (h *Hub) room(id string) *Room {
	if r := h.existing(id); r != nil {
		return r
	}
	// The flag is read without holding the hub's lock.
	relay := h.relayOnly(id)
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.rooms[id]
	if !ok {
		r = newRoom(id, &h.deps, relay)
		h.rooms[id] = r
	}
	return r
}

// relayOnly reads a consult's relay-only flag. It fails closed: a flag that
// cannot be read hides addresses as if it were set.
func (h *Hub) relayOnly(id string) bool {
	if h.deps.RelayOnly == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.deps.IOTimeout)
	defer cancel()
	relay, err := h.deps.RelayOnly(ctx, id)
	if err != nil {
		h.deps.Log.Error("read relay-only flag; hiding addresses behind the relay", "consult", id, "err", err)
		return true
	}
	return relay
}

// lockedRoom returns the consult's room, locked and still in the hub.
func (h *Hub) lockedRoom(id string) *Room {
	r := h.room(id)
	r.mu.Lock()
	for r.discarded {
		// The sweeper dropped this empty room between lookup and lock.
		r.mu.Unlock()
		r = h.room(id)
		r.mu.Lock()
	}
	return r
}

// Join connects a participant's tab to the consult's room. A participant
// already in the room (a reload, a network change, a second tab) takes over
// their place, with the rights they had: nobody goes back to the lobby and
// nobody is admitted by reconnecting. A new guest waits in the lobby; the
// host is admitted at once.
func (h *Hub) Join(consultID string, p Participant, c Conn) (*Room, *Member, error) {
	r := h.lockedRoom(consultID)
	defer r.mu.Unlock()
	if r.ended {
		return nil, nil, ErrEnded
	}
	if r.barred[p.ID] {
		return nil, nil, ErrBarred
	}
	if m, ok := r.members[p.ID]; ok {
		if m.conn != nil && m.conn != c {
			m.conn.Close()
		}
		m.conn, m.goneSince = c, time.Time{}
		if c := CheckResult(p.Check); c != "" {
			m.check = c
		}
		if m.noMic != p.NoMic {
			m.noMic = p.NoMic
			if !m.admitted {
				r.broadcastLobby() // the hosts' lobby entry follows the microphone
			}
		}
		h.deps.Log.Info("member resumed", "consult", consultID, "member", m.ID)
		r.welcome(m)
		if !m.admitted {
			m.send(encode(waitingMsg{Type: "waiting", Clinician: r.clinicianConnectedLocked()}))
		}
		return r, m, nil
	}
	m := &Member{ID: p.ID, Name: p.Name, Kind: p.Kind, Host: p.Host, Link: p.Link, check: CheckResult(p.Check), noMic: p.NoMic, conn: c,
		// Bursts of ICE candidates are normal; a sustained flood is not.
		limiter: rate.NewLimiter(50, 200)}
	readmit := !p.Host && r.admittedBefore(m.ID)
	if !p.Host {
		if err := r.auditJoin(m.ID, readmit); err != nil {
			return nil, nil, err
		}
	}
	r.members[m.ID] = m
	r.welcome(m)
	if p.Host || readmit {
		r.admitLocked(m)
	} else {
		h.deps.Log.Info("member waiting", "consult", consultID, "member", m.ID)
		r.broadcastLobby()
	}
	return r, m, nil
}

// welcome tells a (re)connected tab who it is and, when admitted,
// everything it may see.
func (r *Room) welcome(m *Member) {
	state := "lobby"
	if m.admitted {
		state = "admitted"
	}
	m.send(encode(welcomeMsg{Type: "welcome", Member: m.ID, State: state, Host: m.Host, Recording: r.recordingOffer()}))
	if m.admitted {
		r.sendAdmitted(m)
		if m.rights&RightHost != 0 {
			r.broadcastLobby()
		}
	}
	r.askAgainLocked(m)
}

// Disconnected records that c, a connection of m, closed. The member keeps
// its place for the grace period.
func (h *Hub) Disconnected(r *Room, m *Member, c Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.conn == c {
		m.conn, m.goneSince = nil, h.deps.Now()
		if m.admitted && m.rights&RightHost != 0 {
			r.tellLobbyLocked()
		}
	}
}

// EndConsult ends a consult for everyone, for the dashboard's button as
// for the host's end message: the record is marked ended with its links
// dead, every member is told and disconnected, and session.ended is
// audited once. by is the host's id; the caller checked the right.
func (h *Hub) EndConsult(ctx context.Context, consultID, by string) error {
	r := h.lockedRoom(consultID)
	defer r.mu.Unlock()
	return r.endConsultLocked(ctx, by)
}

// Run expires members whose connection has been gone longer than the grace
// period, and forgets empty rooms, until ctx is done; then it closes every
// WebSocket (going away) and ends the media sessions.
func (h *Hub) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.socks.close()
			h.stopMedia()
			return
		case <-t.C:
			h.sweep()
		}
	}
}

func (h *Hub) sweep() {
	h.mu.Lock()
	rooms := make([]*Room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	now := h.deps.Now()
	for _, r := range rooms {
		h.sweepRoom(r, now)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, r := range h.rooms {
		r.mu.Lock()
		// The HTTP layer refuses to join consults that ended, so an ended
		// room need not outlive its members.
		if len(r.members) == 0 {
			r.discarded = true
			delete(h.rooms, id)
		}
		r.mu.Unlock()
	}
}

// sweepRoom expires a room's members gone past the grace period and runs
// its timers under its lock, then stores again its connected members'
// admissions when due, after the lock.
func (h *Hub) sweepRoom(r *Room, now time.Time) {
	r.mu.Lock()
	for id, m := range r.members {
		if m.conn == nil && !m.goneSince.IsZero() && now.Sub(m.goneSince) >= h.deps.Grace {
			if err := r.audit(EventAborted, id, "connection lost", map[string]string{"reason": "timed out"}); err != nil {
				h.deps.Log.Error("audit", "consult", r.ID, "err", err)
				continue // keep the member until the record can be written
			}
			m.dropMediaLocked()
			delete(r.members, id)
			r.forgetAdmission(id)
			h.deps.Log.Info("member timed out", "consult", r.ID, "member", id)
			r.broadcastRoster()
			r.broadcastLobby()
			r.recordingMemberLeftLocked()
		}
	}
	r.sweepRecordingLocked(now)
	r.returnToPeersLocked(now)
	redate := r.admissionsToRedateLocked(now)
	r.mu.Unlock()
	r.redateAdmissions(redate)
}

// existing returns the room of a consult if it is live.
func (h *Hub) existing(id string) *Room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[id]
}

// Admitted reports whether memberID is an admitted member of the consult's
// live room: the right to share and download documents follows admission.
func (h *Hub) Admitted(consultID, memberID string) bool {
	r := h.existing(consultID)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[memberID]
	return ok && m.admitted
}

// Announce sends a chat message that was stored outside the room (a shared
// document) to the admitted members.
func (h *Hub) Announce(consultID string, msg ChatMessage) {
	r := h.existing(consultID)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := encode(chatOut{Type: "chat", ChatMessage: msg})
	for _, p := range r.members {
		if p.admitted {
			p.send(out)
		}
	}
}

// stopMedia ends every member's media node session and waits for the
// links' goroutines, when the server shuts down.
func (h *Hub) stopMedia() {
	h.mu.Lock()
	for _, r := range h.rooms {
		r.mu.Lock()
		r.stopRecordingLocked(StopServerClose)
		for _, m := range r.members {
			m.dropMediaLocked()
		}
		r.mu.Unlock()
	}
	h.mu.Unlock()
	h.links.Wait()
}
