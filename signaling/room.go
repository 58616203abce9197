package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// Right is a permission a member holds in a room.
type Right uint8

// The rights. A member in the lobby holds none.
const (
	RightSignal Right = 1 << iota // offer, answer, candidate, media state
	RightChat                     // send and read chat
	RightHost                     // admit, deny, remove, end
)

const (
	guestRights = RightSignal | RightChat
	hostRights  = RightSignal | RightChat | RightHost
)

// Conn is one browser tab's connection as the room sees it. Send must not
// block: it queues or reports false when the tab cannot keep up.
type Conn interface {
	Send(msg []byte) bool
	Close()
}

// ChatLog keeps a consult's chat; Append assigns the sequence number and
// time, and stores the message before it is shown to anyone.
type ChatLog interface {
	AppendChat(ctx context.Context, consultID string, m ChatMessage) (ChatMessage, error)
	ChatHistory(ctx context.Context, consultID string) ([]ChatMessage, error)
}

// Recorder writes session events to the audit log.
type Recorder interface {
	RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error
}

// Session audit events.
const (
	EventRequest  = "session.request"
	EventAccepted = "session.accepted"
	EventAborted  = "session.aborted"
	EventEnded    = "session.ended"
)

// Member is one participant of a room.
type Member struct {
	ID   string
	Name string // PHI: shown to members, never logged
	Kind string // "clinician" or "guest"
	Host bool
	Link string // the link a guest joined with

	check     string // the guest's connectivity check result, or ""
	noMic     bool   // the guest joined without a microphone
	rights    Right
	admitted  bool
	audio     bool
	video     bool
	conn      Conn
	goneSince time.Time // when the last connection dropped; zero while connected
	limiter   *rate.Limiter
	media     *mediaLink // the member's media node session, once it joined one
	// lastSFUJoin is when the member last opened a node session.
	lastSFUJoin time.Time
	onNode      bool    // its node session is up
	consent     consent // its last answer to a recording request
}

func (m *Member) info() MemberInfo {
	return MemberInfo{ID: m.ID, Name: m.Name, Kind: m.Kind, Host: m.Host, Audio: m.audio, Video: m.video, Check: m.check, NoMic: m.noMic}
}

func (m *Member) send(b []byte) {
	if m.conn != nil && !m.conn.Send(b) {
		// A tab that cannot keep up is dropped rather than slowing the
		// room; it can resume within the grace period.
		m.conn.Close()
	}
}

func (m *Member) sendError(ref string, e *ProtoError) {
	m.send(encode(errorMsg{Type: "error", Ref: ref, ProtoError: *e}))
}

// RoomDeps are a room's collaborators, shared by every room of a hub.
// RelayOnly reports whether a consult hides members' addresses behind the
// relay; it is read once when the consult's room is created, and a consult
// whose flag cannot be read is treated as relay-only.
type RoomDeps struct {
	Chat      ChatLog
	Audit     Recorder
	Log       *slog.Logger
	Now       func() time.Time
	Grace     time.Duration                                // how long a dropped member keeps its place
	ICE       func(consultID, memberID string) []ICEServer // servers and credentials given at admission
	RelayOnly func(ctx context.Context, consultID string) (bool, error)
	// Records ends consults and denied guests' sessions in the records.
	Records Records
	// IOTimeout bounds each database or audit write a room makes; 0 means
	// 2 s, well under SQLite's busy timeout.
	IOTimeout time.Duration
	// SessionCheck is how often an open tab's session is checked again;
	// 0 means a minute. It must stay under the idle timeout.
	SessionCheck time.Duration
	// Media is the media node consults move to; nil keeps every consult
	// peer to peer.
	Media MediaNode
	// SFUMinParticipants is how many admitted members move a consult to
	// Media; 0 means 3.
	SFUMinParticipants int
	// SFUReturnAfter is how long a consult on Media must have fewer than
	// SFUMinParticipants admitted members before it moves back to peer to
	// peer; 0 keeps it on Media until it ends.
	SFUReturnAfter time.Duration
	// Recordings records consults that every member agreed to record; nil
	// offers no recording. Recording also needs Media to be a
	// media.Recorder.
	Recordings Recordings
	// RecordingPolicy is what the consent question says of a recording.
	RecordingPolicy RecordingPolicy

	// Admissions keeps admissions where a replica that takes the consult
	// over finds them; nil keeps them in the room only.
	Admissions Admissions

	// LargeMessages is the process's budget for messages larger than
	// MaxMessageBytes; nil gives the hub one of its own, of
	// DefaultLargeMessageBudget.
	LargeMessages *LargeMessages

	links *sync.WaitGroup // the hub's media link goroutines, waited for at shutdown
}

// Room is one consult's live state. All state changes happen under mu, and
// sends never block, so a handler finishes in bounded time.
type Room struct {
	ID   string
	deps *RoomDeps

	mu      sync.Mutex
	members map[string]*Member
	route   string // RouteP2P or RouteSFU
	// below is when a consult on the media node last dropped under the
	// members that moved it there; zero while it has them.
	below     time.Time
	speaker   string    // the member last reported loudest
	rec       *recState // the recording requested or running, if any
	ended     bool
	discarded bool // removed from the hub; a Join that raced must look again
	// admissionsDated is when the admissions of the connected members were
	// last stored again (admissionsToRedateLocked).
	admissionsDated time.Time
	relayOnly       bool // read once at creation; true when it could not be read
	// barred are guests denied or removed: they cannot come back into
	// this room, whatever their session says.
	barred map[string]bool

	// chatMu orders chat appends without holding mu during the write, so
	// a slow database delays chat only, not the room's signaling.
	chatMu sync.Mutex
}

func newRoom(id string, deps *RoomDeps, relayOnly bool) *Room {
	return &Room{ID: id, deps: deps, members: map[string]*Member{}, route: RouteP2P, relayOnly: relayOnly, barred: map[string]bool{}}
}

// ioContext bounds one write the room makes while members wait on it.
func (r *Room) ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.deps.IOTimeout)
}

// handler is one entry of the handler table.
type handler struct {
	need  Right
	apply func(*Room, *Member, json.RawMessage) error
	// unlocked handlers run without the room's lock and take it
	// themselves around state changes: they wait on I/O the room's other
	// members must not wait for.
	unlocked bool
}

// handlers maps each client message type to the right it needs and its
// handler. The table is fixed at init; the dispatcher checks size, type and
// right, so no handler re-checks them.
var handlers = map[string]handler{
	"offer":       {need: RightSignal, apply: relaySDP("offer")},
	"answer":      {need: RightSignal, apply: relaySDP("answer")},
	"candidate":   {need: RightSignal, apply: (*Room).relayCandidate},
	"media-state": {need: RightSignal, apply: (*Room).mediaState},
	"chat":        {need: RightChat, apply: (*Room).postChat, unlocked: true},
	"admit":       {need: RightHost, apply: (*Room).admit},
	"deny":        {need: RightHost, apply: (*Room).deny},
	"remove":      {need: RightHost, apply: (*Room).remove},
	"end":         {need: RightHost, apply: (*Room).end},
	"sfu-join":    {need: RightSignal, apply: (*Room).sfuJoin},
	"sfu-leave":   {need: RightSignal, apply: (*Room).sfuLeave},
	"view":        {need: RightSignal, apply: (*Room).view},
	"ping":        {apply: (*Room).ping},
	"leave":       {apply: (*Room).leave},
	// Recording: a member in the lobby may answer, when it is asked.
	"record-start":   {need: RightHost, apply: (*Room).recordStart},
	"record-stop":    {need: RightHost, apply: (*Room).recordStop},
	"record-consent": {apply: (*Room).recordConsent},
}

// Handle dispatches one inbound message from m.
func (r *Room) Handle(m *Member, raw []byte) {
	env, bad := readEnvelope(raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.dispatchable(m, env, bad)
	if !ok {
		return
	}
	var err error
	if h.unlocked {
		r.mu.Unlock()
		err = h.apply(r, m, raw)
		r.mu.Lock()
	} else {
		err = h.apply(r, m, raw)
	}
	r.reply(m, env, err)
}

// dispatchable returns the handler of a message m may send now, or answers
// why not; bad is what made the message unreadable, if anything. It runs
// under mu.
func (r *Room) dispatchable(m *Member, env envelope, bad *ProtoError) (handler, bool) {
	if !r.admitMessage(m, env) {
		return handler{}, false
	}
	if bad != nil {
		m.sendError("", bad)
		return handler{}, false
	}
	h, ok := handlers[env.Type]
	if !ok {
		m.sendError(env.ID, ErrUnknownType)
		return handler{}, false
	}
	if h.need != 0 && m.rights&h.need != h.need {
		if !m.admitted {
			m.sendError(env.ID, ErrLobby)
		} else {
			m.sendError(env.ID, ErrForbidden)
		}
		return handler{}, false
	}
	return h, true
}

// reply tells m how its message went. It runs under mu.
func (r *Room) reply(m *Member, env envelope, err error) {
	if err != nil {
		var pe *ProtoError
		if !errors.As(err, &pe) {
			r.deps.Log.Error("handle message", "consult", r.ID, "member", m.ID, "type", env.Type, "err", err)
			pe = ErrInternal
		}
		m.sendError(env.ID, pe)
		return
	}
	if env.Type != "ping" && env.ID != "" {
		m.send(encode(pongMsg{Type: "ack", Ref: env.ID}))
	}
}

func decode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return ErrMalformed
	}
	return nil
}

// peer returns the admitted, connected-or-resumable member to, other than m.
func (r *Room) peer(m *Member, to string) (*Member, error) {
	p, ok := r.members[to]
	if !ok || !p.admitted || p == m {
		return nil, ErrNoMember
	}
	return p, nil
}

func relaySDP(kind string) func(*Room, *Member, json.RawMessage) error {
	return func(r *Room, m *Member, raw json.RawMessage) error {
		var in sdpIn
		if err := decode(raw, &in); err != nil {
			return err
		}
		if in.SDP == "" || !sdpFits(in.SDP) || !strings.Contains(in.SDP, "a=fingerprint:") || !strings.HasPrefix(in.SDP, "v=0") {
			return ErrBadSDP
		}
		if in.To == SFUPeer {
			return r.toNode(m, raw, kind, in.SDP, nil)
		}
		p, err := r.peer(m, in.To)
		if err != nil {
			return err
		}
		p.send(encode(relayedMsg{Type: kind, From: m.ID, SDP: in.SDP}))
		return nil
	}
}

func (r *Room) relayCandidate(m *Member, raw json.RawMessage) error {
	var in candidateIn
	if err := decode(raw, &in); err != nil {
		return err
	}
	if len(in.Candidate) == 0 || len(in.Candidate) > MaxCandidateBytes || in.Candidate[0] != '{' {
		return ErrBadField
	}
	if in.To == SFUPeer {
		return r.toNode(m, raw, "candidate", "", in.Candidate)
	}
	p, err := r.peer(m, in.To)
	if err != nil {
		return err
	}
	p.send(encode(relayedMsg{Type: "candidate", From: m.ID, Candidate: in.Candidate}))
	return nil
}

func (r *Room) mediaState(m *Member, raw json.RawMessage) error {
	var in mediaStateIn
	if err := decode(raw, &in); err != nil {
		return err
	}
	m.audio, m.video = in.Audio, in.Video
	r.broadcastRoster()
	return nil
}

func (r *Room) postChat(m *Member, raw json.RawMessage) error {
	var in chatIn
	if err := decode(raw, &in); err != nil {
		return err
	}
	text := strings.TrimSpace(in.Text)
	if text == "" || len(text) > MaxChatBytes || !utf8.ValidString(text) {
		return ErrBadField
	}
	// The append holds chatMu, not mu: the order of the log is kept while
	// the rest of the room goes on.
	r.chatMu.Lock()
	defer r.chatMu.Unlock()
	ctx, cancel := r.ioContext()
	defer cancel()
	msg, err := r.deps.Chat.AppendChat(ctx, r.ID, ChatMessage{From: m.ID, Name: m.Name, Text: text})
	if err != nil {
		return fmt.Errorf("append chat: %w", err)
	}
	out := encode(chatOut{Type: "chat", ChatMessage: msg})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.ID] != m || r.ended {
		return nil // stored, but the sender was taken out meanwhile: show nothing more
	}
	for _, p := range r.members {
		if p.admitted {
			p.send(out)
		}
	}
	return nil
}

func (r *Room) ping(m *Member, raw json.RawMessage) error {
	var env envelope
	_ = json.Unmarshal(raw, &env)
	m.send(encode(pongMsg{Type: "pong", Ref: env.ID}))
	return nil
}

// waiting returns the target of a host action that must be in the lobby.
func (r *Room) target(raw json.RawMessage) (*Member, error) {
	var in memberIn
	if err := decode(raw, &in); err != nil {
		return nil, err
	}
	p, ok := r.members[in.Member]
	if !ok {
		return nil, ErrNoMember
	}
	return p, nil
}

func (r *Room) admit(host *Member, raw json.RawMessage) error {
	p, err := r.target(raw)
	if err != nil {
		return err
	}
	if p.admitted {
		return nil // a second click from another host is harmless
	}
	if err := r.admitRecordedLocked(p); err != nil {
		return err
	}
	if err := r.audit(EventAccepted, p.ID, "admitted from the lobby", map[string]string{"by": host.ID}); err != nil {
		return err
	}
	r.admitLocked(p)
	return nil
}

// admitLocked grants rights and sends the admitted member everything the
// lobby withheld.
func (r *Room) admitLocked(p *Member) {
	p.admitted = true
	p.rights = guestRights
	if p.Host {
		p.rights = hostRights
	}
	r.deps.Log.Info("member admitted", "consult", r.ID, "member", p.ID)
	r.rememberAdmission(p)
	r.moveToNodeLocked()
	r.sendAdmitted(p)
	r.broadcastRoster()
	r.broadcastLobby()
	r.recordingAdmittedLocked(p)
}

func (r *Room) sendAdmitted(p *Member) {
	ctx, cancel := r.ioContext()
	history, err := r.deps.Chat.ChatHistory(ctx, r.ID)
	cancel()
	if err != nil {
		r.deps.Log.Error("chat history", "consult", r.ID, "err", err)
		history = nil
	}
	policy := "all"
	if r.relayOnly {
		policy = "relay"
	}
	var ice []ICEServer
	if r.deps.ICE != nil {
		ice = r.deps.ICE(r.ID, p.ID)
	}
	if history == nil {
		history = []ChatMessage{}
	}
	p.send(encode(admittedMsg{Type: "admitted", ICEServers: ice, Policy: policy, Roster: r.rosterLocked(), Chat: history, Route: r.route, Node: p.media != nil && p.onNode}))
	if r.rec != nil {
		p.send(r.recordingStateMsg(""))
	}
}

func (r *Room) deny(host *Member, raw json.RawMessage) error {
	p, err := r.target(raw)
	if err != nil {
		return err
	}
	if p.admitted {
		return ErrBadField
	}
	return r.expel(p, host, CloseDenied, "denied admission")
}

func (r *Room) remove(host *Member, raw json.RawMessage) error {
	p, err := r.target(raw)
	if err != nil {
		return err
	}
	if p == host {
		return ErrBadField
	}
	return r.expel(p, host, CloseRemoved, "removed by the host")
}

// expel takes p out of the room for good and tells it why. A guest's
// session ends with it and the room bars the guest, so the same session
// cannot knock again; the denial counts toward the link refusing the
// guest's device.
func (r *Room) expel(p, by *Member, kind, message string) error {
	if err := r.audit(EventAborted, p.ID, message, map[string]string{"by": by.ID, "reason": kind}); err != nil {
		return err
	}
	if p.Kind == "guest" {
		r.barred[p.ID] = true
		if r.deps.Records != nil {
			ctx, cancel := r.ioContext()
			err := r.deps.Records.DenyGuest(ctx, r.ID, p.ID)
			cancel()
			if err != nil {
				// The bar holds while the room lives; the session still
				// ends at its deadline.
				r.deps.Log.Error("end denied guest's session", "consult", r.ID, "member", p.ID, "err", err)
			}
		}
	}
	r.dropLocked(p, kind)
	return nil
}

func (r *Room) leave(m *Member, _ json.RawMessage) error {
	if err := r.audit(EventAborted, m.ID, "left", map[string]string{"reason": "left"}); err != nil {
		return err
	}
	if m.conn != nil {
		m.conn.Close()
	}
	m.dropMediaLocked()
	delete(r.members, m.ID)
	r.forgetAdmission(m.ID)
	r.broadcastRoster()
	r.broadcastLobby()
	r.recordingMemberLeftLocked()
	return nil
}

// end is the host's end message: the same path as the dashboard's button.
func (r *Room) end(host *Member, _ json.RawMessage) error {
	return r.endConsultLocked(context.Background(), host.ID)
}

func (r *Room) endLocked(by, message string) error {
	if r.ended {
		return nil
	}
	ids := make([]string, 0, len(r.members))
	for id := range r.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if err := r.audit(EventEnded, by, message, map[string]string{"participants": strings.Join(ids, ",")}); err != nil {
		return err
	}
	r.stopRecordingLocked(StopEnded)
	r.ended = true
	out := encode(closingMsg{Type: CloseEnded})
	for _, p := range r.members {
		p.send(out)
		if p.conn != nil {
			p.conn.Close()
		}
		p.dropMediaLocked()
	}
	r.members = map[string]*Member{}
	return nil
}

func (r *Room) audit(event, memberID, message string, fields map[string]string) error {
	ctx, cancel := r.ioContext()
	defer cancel()
	return r.deps.Audit.RecordSession(ctx, event, r.ID, memberID, message, fields)
}

// rosterLocked lists admitted members, hosts first, then by id.
func (r *Room) rosterLocked() []MemberInfo {
	var out []MemberInfo
	for _, p := range r.members {
		if p.admitted {
			out = append(out, p.info())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (r *Room) broadcastRoster() {
	msg := encode(rosterMsg{Type: "roster", Members: r.rosterLocked()})
	for _, p := range r.members {
		if p.admitted {
			p.send(msg)
		}
	}
}

// broadcastLobby tells hosts, and only hosts, who is waiting.
func (r *Room) broadcastLobby() {
	var waiting []MemberInfo
	for _, p := range r.members {
		if !p.admitted {
			info := p.info()
			info.Recording = r.lobbyAnswerLocked(p)
			waiting = append(waiting, info)
		}
	}
	sort.Slice(waiting, func(i, j int) bool { return waiting[i].ID < waiting[j].ID })
	if waiting == nil {
		waiting = []MemberInfo{}
	}
	msg := encode(lobbyMsg{Type: "lobby", Waiting: waiting})
	for _, p := range r.members {
		if p.admitted && p.rights&RightHost != 0 {
			p.send(msg)
		}
	}
	r.tellLobbyLocked()
}
