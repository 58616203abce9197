package signaling

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"time"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording"
)

// Recordings starts consult recordings once every member agreed.
type Recordings interface {
	Start(ctx context.Context, req recording.StartRequest) (recording.Active, error)
}

// RecordingPolicy is what the consent question tells members about what
// becomes of a recording: who may watch it and how long it is kept.
type RecordingPolicy struct {
	// Viewers are the roles that may watch a consult's recordings besides
	// its own clinician, such as "admin".
	Viewers []string
	// Retention is how long a recording is kept; 0 keeps it until it is
	// deleted.
	Retention time.Duration
}

// Recording audit events of the live consult; the recorder audits the rest.
const (
	EventRecordingRequested = "recording.requested"
	EventRecordingConsented = "recording.consented"
	EventRecordingDeclined  = "recording.declined"
)

// The recording states members see.
const (
	RecordingOff      = "off"      // nothing requested
	RecordingAsking   = "asking"   // the host asked; members answer
	RecordingStarting = "starting" // everyone agreed; the consult moves to the node and the recorder starts
	RecordingOn       = "on"       // recording
	RecordingStopping = "stopping" // still recording until the recorder finished
)

// Why a recording request or a recording ended, as members see it and as
// the recorder audits it.
const (
	StopRequested   = "requested"         // the host stopped it or withdrew the request
	StopDeclined    = "declined"          // a member declined the request
	StopWithdrawn   = "withdrawn"         // a member withdrew consent while it recorded
	StopJoined      = "member-joined"     // someone who had not agreed came in
	StopEnded       = "ended"             // the consult ended
	StopFailed      = "failed"            // the recorder or the media node failed
	StopNoMedia     = "media-unavailable" // no member reached the media node
	StopUnanswered  = "unanswered"        // not everyone answered in time
	StopServerClose = "shutdown"          // the server is shutting down
)

// Errors of the recording messages.
var (
	ErrRecordingUnavailable = &ProtoError{"recording-unavailable", "recording is not available for this consult"}
	ErrRecordingBusy        = &ProtoError{"recording-busy", "a recording is already requested or running"}
	ErrNotRecording         = &ProtoError{"not-recording", "no recording is requested or running"}
	ErrNotAsked             = &ProtoError{"not-asked", "no recording consent with this request is asked of you"}
	ErrConsentRequired      = &ProtoError{"consent-required", "this member has not agreed to the recording that runs"}
)

// Timing of a recording request.
const (
	// recordAskFor is how long members have to answer a request.
	recordAskFor = 2 * time.Minute
	// recordNodeWait is how long a starting recording waits for every
	// member to reach the media node; then it starts with those there.
	recordNodeWait = 15 * time.Second
	// recordStartTimeout and recordStopTimeout bound the recorder's calls.
	recordStartTimeout = 20 * time.Second
	recordStopTimeout  = 20 * time.Second
	// maxRequestIDBytes bounds the request id a client sends back.
	maxRequestIDBytes = 64
)

// Recording messages.
type (
	recordingMsg struct {
		Type    string `json:"type"` // "recording"
		State   string `json:"state"`
		Request string `json:"request,omitempty"`
		Reason  string `json:"reason,omitempty"`
	}
	recordAskMsg struct {
		Type    string `json:"type"` // "record-ask"
		Request string `json:"request"`
	}
	// recordingOffer tells a tab, in its welcome, that the host may ask to
	// record and what the consent question says.
	recordingOffer struct {
		Viewers          []string `json:"viewers"`
		RetentionSeconds int64    `json:"retentionSeconds"` // 0: until deleted
	}
	consentIn struct {
		Request string `json:"request"`
		Consent *bool  `json:"consent"`
	}
)

// recState is one recording request, from the host's question to the end
// of the recording. Fields are guarded by the room's lock, except stop,
// which the recording's goroutine waits on.
type recState struct {
	id    string
	by    *Member
	phase string
	since time.Time // when the phase began
	// moved is set when the recording moved a peer-to-peer consult to the
	// node; it moves back when the recording ends.
	moved    bool
	launched bool          // the recorder's Start was called
	reason   string        // why it stops, once stopping
	stop     chan struct{} // closed to stop a launched recording
}

// member consent, kept on the Member.
type consent struct {
	request string // the request agreed to, or declined
	agreed  bool
	at      time.Time
}

// recordingAvailable reports whether the host may ask to record: a
// recorder is configured and the media node can record.
func (r *Room) recordingAvailable() bool {
	if r.deps.Recordings == nil || r.deps.Media == nil {
		return false
	}
	_, ok := r.deps.Media.(media.Recorder)
	return ok
}

func (r *Room) recordingOffer() *recordingOffer {
	if !r.recordingAvailable() {
		return nil
	}
	p := r.deps.RecordingPolicy
	v := p.Viewers
	if v == nil {
		v = []string{}
	}
	return &recordingOffer{Viewers: v, RetentionSeconds: int64(p.Retention / time.Second)}
}

// recordingLocked reports whether members are recorded, or about to be:
// from the moment everyone agreed until the recorder finished.
func (r *Room) recordingLocked() bool {
	return r.rec != nil && r.rec.phase != RecordingAsking
}

func (m *Member) agreedTo(request string) bool {
	return m.consent.request == request && m.consent.agreed
}

// recordStart is the host's request to record: every admitted member is
// asked, the host's request counting as the host's own consent.
func (r *Room) recordStart(host *Member, _ json.RawMessage) error {
	if !r.recordingAvailable() {
		return ErrRecordingUnavailable
	}
	if r.rec != nil {
		return ErrRecordingBusy
	}
	id := "rec_" + rand.Text()
	if err := r.audit(EventRecordingRequested, host.ID, "recording requested", map[string]string{"request": id}); err != nil {
		return err
	}
	now := r.deps.Now()
	r.rec = &recState{id: id, by: host, phase: RecordingAsking, since: now, stop: make(chan struct{})}
	if err := r.audit(EventRecordingConsented, host.ID, "requested by this member", map[string]string{"request": id}); err != nil {
		r.deps.Log.Error("audit", "consult", r.ID, "err", err)
	}
	host.consent = consent{request: id, agreed: true, at: now}
	r.deps.Log.Info("recording requested", "consult", r.ID, "request", id, "by", host.ID)
	r.broadcastRecordingLocked("")
	ask := encode(recordAskMsg{Type: "record-ask", Request: id})
	for _, p := range r.members {
		if p.admitted && p != host {
			p.send(ask)
		}
	}
	r.advanceRecordingLocked()
	return nil
}

// recordStop is the host's: it withdraws a request or stops the recording.
func (r *Room) recordStop(host *Member, _ json.RawMessage) error {
	if r.rec == nil || r.rec.phase == RecordingStopping {
		return ErrNotRecording
	}
	r.stopRecordingLocked(StopRequested)
	return nil
}

// recordConsent is a member's answer, for itself only: an admitted member
// answers a request, a member in the lobby answers before it is admitted
// into a recorded consult, and anyone withdraws an agreement by answering
// false later.
func (r *Room) recordConsent(m *Member, raw json.RawMessage) error {
	var in consentIn
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		*consentIn
	}{consentIn: &in}); err != nil {
		return ErrMalformed
	}
	if in.Request == "" || len(in.Request) > maxRequestIDBytes || in.Consent == nil {
		return ErrBadField
	}
	rs := r.rec
	if rs == nil || rs.id != in.Request || !r.askedLocked(m) {
		return ErrNotAsked
	}
	fields := map[string]string{"request": rs.id}
	if !m.admitted {
		fields["lobby"] = "true"
	}
	if !*in.Consent {
		return r.declineLocked(m, fields)
	}
	if m.agreedTo(rs.id) {
		return nil // a second click
	}
	if err := r.audit(EventRecordingConsented, m.ID, "agreed to be recorded", fields); err != nil {
		return err // not counted without its record
	}
	m.consent = consent{request: rs.id, agreed: true, at: r.deps.Now()}
	if !m.admitted {
		r.broadcastLobby() // the hosts see who may come in
		return nil
	}
	r.advanceRecordingLocked()
	return nil
}

// askedLocked reports whether the current request is a question for m:
// admitted members are asked throughout, members in the lobby once the
// recording starts.
func (r *Room) askedLocked(m *Member) bool {
	return m.admitted || r.recordingLocked()
}

// declineLocked takes m's no. A decline takes effect even when its audit
// record cannot be written: stopping a recording never waits on the log.
func (r *Room) declineLocked(m *Member, fields map[string]string) error {
	rs := r.rec
	withdrawn := m.agreedTo(rs.id)
	msg := "declined to be recorded"
	if withdrawn {
		msg = "withdrew consent to be recorded"
		fields["withdrawn"] = "true"
	}
	if err := r.audit(EventRecordingDeclined, m.ID, msg, fields); err != nil {
		r.deps.Log.Error("audit", "consult", r.ID, "member", m.ID, "err", err)
	}
	m.consent = consent{request: rs.id, at: r.deps.Now()}
	if !m.admitted {
		// It waits until the recording stops, or leaves; the hosts see
		// that it declined.
		r.broadcastLobby()
		return nil
	}
	reason := StopDeclined
	if r.recordingLocked() {
		reason = StopWithdrawn
	}
	r.stopRecordingLocked(reason)
	return nil
}

// advanceRecordingLocked moves a request on when it can: once every
// admitted member agreed, the consult goes to the media node, and once the
// members are there the recorder starts.
func (r *Room) advanceRecordingLocked() {
	rs := r.rec
	if rs == nil {
		return
	}
	if rs.phase == RecordingAsking {
		for _, p := range r.members {
			if p.admitted && !p.agreedTo(rs.id) {
				return
			}
		}
		rs.phase, rs.since = RecordingStarting, r.deps.Now()
		r.deps.Log.Info("recording agreed by every member", "consult", r.ID, "request", rs.id)
		rs.moved = r.route == RouteP2P
		r.moveToNodeLocked()
		r.broadcastRecordingLocked("")
		r.askLobbyLocked()
	}
	if rs.phase != RecordingStarting || rs.launched {
		return
	}
	for _, p := range r.members {
		if p.admitted && !p.onNode {
			return
		}
	}
	r.launchLocked()
}

// askLobbyLocked asks the members waiting in the lobby, who are now
// waiting to come into a recorded consult.
func (r *Room) askLobbyLocked() {
	ask := encode(recordAskMsg{Type: "record-ask", Request: r.rec.id})
	for _, p := range r.members {
		if !p.admitted && !p.agreedTo(r.rec.id) {
			p.send(ask)
		}
	}
	r.broadcastLobby()
}

// launchLocked calls the recorder on a goroutine of the hub's, which then
// follows the recording until it ends.
func (r *Room) launchLocked() {
	rs := r.rec
	rs.launched = true
	node, _ := r.deps.Media.(media.Recorder)
	req := recording.StartRequest{ConsultID: r.ID, RoomID: r.ID, Node: node, RequestedBy: rs.by.ID, Request: rs.id}
	for _, p := range r.members {
		if p.admitted {
			c := recording.Consent{MemberID: p.ID, Name: p.Name, At: p.consent.at}
			if p.Kind != "guest" {
				c.AccountID = p.ID
			}
			req.Consents = append(req.Consents, c)
		}
	}
	r.deps.links.Go(func() { r.follow(rs, req) })
}

// follow starts the recording and waits for its end: stopped through rs,
// or ended on its own when the node failed.
func (r *Room) follow(rs *recState, req recording.StartRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), recordStartTimeout)
	active, err := r.deps.Recordings.Start(ctx, req)
	cancel()
	if err != nil {
		r.deps.Log.Error("start recording", "consult", r.ID, "request", rs.id, "err", err)
		r.recordingEnded(rs, StopFailed)
		return
	}
	r.mu.Lock()
	if r.rec == rs && rs.phase == RecordingStarting {
		rs.phase, rs.since = RecordingOn, r.deps.Now()
		r.deps.Log.Info("recording started", "consult", r.ID, "request", rs.id, "recording", active.ID())
		r.broadcastRecordingLocked("")
	}
	r.mu.Unlock()
	select {
	case <-active.Done():
		r.deps.Log.Warn("recording ended on its own", "consult", r.ID, "recording", active.ID())
		r.recordingEnded(rs, StopFailed)
		return
	case <-rs.stop:
	}
	ctx, cancel = context.WithTimeout(context.Background(), recordStopTimeout)
	err = active.Stop(ctx, rs.reason)
	cancel()
	if err != nil {
		r.deps.Log.Error("stop recording", "consult", r.ID, "recording", active.ID(), "err", err)
	}
	r.recordingEnded(rs, rs.reason)
}

// recordingEnded tells everyone that the recording rs ended, unless
// another took its place meanwhile.
func (r *Room) recordingEnded(rs *recState, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec != rs {
		return
	}
	if rs.phase == RecordingStopping {
		reason = rs.reason // it was being stopped anyway
	}
	r.endRecordingLocked(reason)
}

// stopRecordingLocked withdraws the request, or stops the recording: a
// launched recording says "stopping" until the recorder has finished.
func (r *Room) stopRecordingLocked(reason string) {
	rs := r.rec
	if rs == nil || rs.phase == RecordingStopping {
		return
	}
	r.deps.Log.Info("recording stops", "consult", r.ID, "request", rs.id, "reason", reason)
	if !rs.launched {
		r.endRecordingLocked(reason)
		return
	}
	rs.phase, rs.reason = RecordingStopping, reason
	close(rs.stop)
	r.broadcastRecordingLocked(reason)
}

// endRecordingLocked forgets the request, tells everyone, and moves a
// consult that the recording moved to the node back to peer to peer.
func (r *Room) endRecordingLocked(reason string) {
	rs := r.rec
	r.rec = nil
	r.broadcastRecordingLocked(reason)
	msg := encode(recordingMsg{Type: "recording", State: RecordingOff, Request: rs.id, Reason: reason})
	for _, p := range r.members {
		if !p.admitted && rs.phase != RecordingAsking {
			p.send(msg) // the lobby's question is void
		}
	}
	if rs.phase != RecordingAsking {
		r.broadcastLobby()
	}
	if rs.moved && !r.ended && r.admittedLocked() < r.deps.SFUMinParticipants {
		r.moveToPeersLocked()
	}
}

// broadcastRecordingLocked tells admitted members the recording's state.
func (r *Room) broadcastRecordingLocked(reason string) {
	msg := r.recordingStateMsg(reason)
	for _, p := range r.members {
		if p.admitted {
			p.send(msg)
		}
	}
}

func (r *Room) recordingStateMsg(reason string) []byte {
	if r.rec == nil {
		return encode(recordingMsg{Type: "recording", State: RecordingOff, Reason: reason})
	}
	return encode(recordingMsg{Type: "recording", State: r.rec.phase, Request: r.rec.id, Reason: reason})
}

// askAgainLocked asks a member whose tab (re)connected, if an answer
// from it is due: an admitted member during a request, a member in the
// lobby while members are recorded. A host is never held in the lobby, so
// it is not asked there.
func (r *Room) askAgainLocked(p *Member) {
	if r.rec == nil || p.consent.request == r.rec.id || !r.askedLocked(p) || p.Host && !p.admitted {
		return
	}
	p.send(encode(recordAskMsg{Type: "record-ask", Request: r.rec.id}))
}

// lobbyAnswerLocked is what the hosts' lobby list says of p's answer
// while members are recorded.
func (r *Room) lobbyAnswerLocked(p *Member) string {
	switch {
	case !r.recordingLocked():
		return ""
	case p.consent.request != r.rec.id:
		return "asked"
	case p.consent.agreed:
		return "agreed"
	default:
		return "declined"
	}
}

// admitRecordedLocked checks an admission while members are recorded: a
// member who has not agreed stays in the lobby.
func (r *Room) admitRecordedLocked(p *Member) error {
	if r.recordingLocked() && !p.agreedTo(r.rec.id) {
		return ErrConsentRequired
	}
	return nil
}

// recordingAdmittedLocked follows an admission: during a request the new
// member is asked too; a host that comes in without having agreed stops a
// recording (hosts do not wait in the lobby).
func (r *Room) recordingAdmittedLocked(p *Member) {
	rs := r.rec
	if rs == nil || p.agreedTo(rs.id) {
		return
	}
	if r.recordingLocked() {
		r.stopRecordingLocked(StopJoined)
		return
	}
	p.send(encode(recordAskMsg{Type: "record-ask", Request: rs.id}))
}

// recordingMemberLeftLocked follows a member leaving: those who remain
// may all have agreed now. A request whose host left is withdrawn; a recording goes on, since those
// who remain agreed to it.
func (r *Room) recordingMemberLeftLocked() {
	rs := r.rec
	if rs == nil {
		return
	}
	if rs.phase == RecordingAsking && r.members[rs.by.ID] != rs.by {
		r.stopRecordingLocked(StopRequested)
		return
	}
	r.advanceRecordingLocked()
}

// nodeJoined records that m's node session is up; a starting recording
// may be waiting for it.
func (r *Room) nodeJoined(m *Member, s *nodeSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[m.ID] != m || !s.active.Load() {
		return
	}
	m.onNode = true
	r.advanceRecordingLocked()
}

// sweepRecordingLocked ends a request that nobody finished answering, and
// starts a recording whose members did not all reach the media node in
// time with those who did.
func (r *Room) sweepRecordingLocked(now time.Time) {
	rs := r.rec
	if rs == nil {
		return
	}
	switch {
	case rs.phase == RecordingAsking && now.Sub(rs.since) >= recordAskFor:
		r.stopRecordingLocked(StopUnanswered)
	case rs.phase == RecordingStarting && !rs.launched && now.Sub(rs.since) >= recordNodeWait:
		for _, p := range r.members {
			if p.admitted && p.onNode {
				r.launchLocked()
				return
			}
		}
		r.stopRecordingLocked(StopNoMedia)
	}
}
