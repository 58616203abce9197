package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// tab is a browser tab as the room sees it: a queue of messages.
type tab struct {
	mu     sync.Mutex
	msgs   []map[string]any
	closed bool
	full   bool // simulates a tab that stopped reading
}

func (t *tab) Send(b []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.full {
		return false
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	t.msgs = append(t.msgs, m)
	return true
}

func (t *tab) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
}

// take returns and forgets the messages received so far.
func (t *tab) take() []map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.msgs
	t.msgs = nil
	return m
}

func (t *tab) types() []string {
	var out []string
	for _, m := range t.take() {
		out = append(out, m["type"].(string))
	}
	return out
}

func (t *tab) last(typ string) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.msgs) - 1; i >= 0; i-- {
		if t.msgs[i]["type"] == typ {
			return t.msgs[i]
		}
	}
	return nil
}

type memChat struct {
	mu   sync.Mutex
	msgs map[string][]ChatMessage
	now  func() time.Time
}

func (c *memChat) AppendChat(_ context.Context, consult string, m ChatMessage) (ChatMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.Seq = int64(len(c.msgs[consult]) + 1)
	m.At = c.now()
	c.msgs[consult] = append(c.msgs[consult], m)
	return m, nil
}

func (c *memChat) ChatHistory(_ context.Context, consult string) ([]ChatMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ChatMessage(nil), c.msgs[consult]...), nil
}

type auditLog struct {
	mu     sync.Mutex
	events []string
}

func (a *auditLog) RecordSession(_ context.Context, event, consult, member, _ string, fields map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, fmt.Sprintf("%s %s %s", event, member, fields["reason"]))
	return nil
}

// memRecords stands for the consult records: it remembers what the rooms
// asked of it.
type memRecords struct {
	mu       sync.Mutex
	finished []string
	denied   []string
	fail     error
}

func (m *memRecords) Finish(_ context.Context, consultID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.finished = append(m.finished, consultID)
	return nil
}

func (m *memRecords) DenyGuest(_ context.Context, _, guestID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.denied = append(m.denied, guestID)
	return nil
}

type fixture struct {
	hub     *Hub
	clock   time.Time
	audit   *auditLog
	chat    *memChat
	records *memRecords
}

func newFixture() *fixture {
	f := &fixture{clock: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC), audit: &auditLog{}, records: &memRecords{}}
	now := func() time.Time { return f.clock }
	f.chat = &memChat{msgs: map[string][]ChatMessage{}, now: now}
	f.hub = NewHub(RoomDeps{
		Chat: f.chat, Audit: f.audit, Records: f.records, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now, Grace: time.Minute,
		ICE: func(_, member string) []ICEServer {
			return []ICEServer{{URLs: []string{"turn:turn.example:3478?transport=udp"}, Username: "1700000000:" + member, Credential: "x"}}
		},
	})
	return f
}

func (f *fixture) join(t *testing.T, id string, host bool) (*Room, *Member, *tab) {
	t.Helper()
	c := &tab{}
	kind := "guest"
	if host {
		kind = "clinician"
	}
	r, m, err := f.hub.Join("c_1", Participant{ID: id, Name: "Name of " + id, Kind: kind, Host: host}, c)
	if err != nil {
		t.Fatal(err)
	}
	return r, m, c
}

const sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n"

func msg(typ string, fields ...any) []byte {
	m := map[string]any{"type": typ, "id": "r1"}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

func errCode(c *tab) string {
	if e := c.last("error"); e != nil {
		return e["code"].(string)
	}
	return ""
}

func TestLobbyGuestCannotSignalChatOrReadRoster(t *testing.T) {
	f := newFixture()
	r, _, host := f.join(t, "u_doc", true)
	_, guest, gtab := f.join(t, "g_pat", false)

	if got := gtab.types(); strings.Join(got, ",") != "welcome,waiting" {
		t.Fatalf("lobby guest received %v, want only welcome and waiting", got)
	}
	if w := host.last("lobby"); w == nil || len(w["waiting"].([]any)) != 1 {
		t.Fatalf("host did not see the waiting guest: %v", w)
	}
	host.take()
	f.chat.AppendChat(context.Background(), "c_1", ChatMessage{From: "u_doc", Name: "Doc", Text: "earlier note"})

	tests := []struct {
		name string
		raw  []byte
	}{
		{"offer", msg("offer", "to", "u_doc", "sdp", sdp)},
		{"answer", msg("answer", "to", "u_doc", "sdp", sdp)},
		{"candidate", msg("candidate", "to", "u_doc", "candidate", map[string]any{"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host"})},
		{"chat", msg("chat", "text", "hello?")},
		{"media state", msg("media-state", "audio", true, "video", true)},
		{"admit self", msg("admit", "member", "g_pat")},
		{"end", msg("end")},
	}
	for _, tt := range tests {
		r.Handle(guest, tt.raw)
		if code := errCode(gtab); code != "lobby" {
			t.Errorf("%s from the lobby: error %q, want lobby", tt.name, code)
		}
		for _, m := range gtab.take() {
			if m["type"] != "error" {
				t.Errorf("%s: lobby guest received %v", tt.name, m["type"])
			}
		}
		if got := host.take(); len(got) != 0 {
			t.Errorf("%s from the lobby reached the host: %v", tt.name, got)
		}
	}
}

func TestAdmitGrantsRosterChatAndICE(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	_, guest, gtab := f.join(t, "g_pat", false)
	r.Handle(hm, msg("chat", "text", "before admission"))
	if gtab.last("chat") != nil {
		t.Fatal("lobby guest received chat")
	}
	r.Handle(hm, msg("admit", "member", "g_pat"))
	adm := gtab.last("admitted")
	if adm == nil {
		t.Fatalf("no admitted message: %v", gtab.types())
	}
	if n := len(adm["roster"].([]any)); n != 2 {
		t.Fatalf("roster has %d members", n)
	}
	if n := len(adm["chat"].([]any)); n != 1 {
		t.Fatalf("history has %d messages", n)
	}
	if ice := adm["iceServers"].([]any); len(ice) != 1 || !strings.HasSuffix(ice[0].(map[string]any)["username"].(string), ":g_pat") {
		t.Fatalf("ICE servers %v", ice)
	}
	gtab.take()
	host.take()

	r.Handle(guest, msg("offer", "to", "u_doc", "sdp", sdp))
	if o := host.last("offer"); o == nil || o["from"] != "g_pat" || o["sdp"] != sdp {
		t.Fatalf("offer not relayed: %v", o)
	}
	r.Handle(hm, msg("answer", "to", "g_pat", "sdp", sdp))
	if a := gtab.last("answer"); a == nil || a["from"] != "u_doc" {
		t.Fatalf("answer not relayed: %v", a)
	}
	r.Handle(guest, msg("chat", "text", "  hello doctor  "))
	for _, c := range []*tab{host, gtab} {
		if m := c.last("chat"); m == nil || m["text"] != "hello doctor" || m["name"] != "Name of g_pat" {
			t.Fatalf("chat not delivered: %v", m)
		}
	}
	if got := strings.Join(f.audit.events, "|"); !strings.Contains(got, "session.request g_pat") || !strings.Contains(got, "session.accepted g_pat") {
		t.Fatalf("audit = %s", got)
	}
}

func TestGuestCannotActAsHost(t *testing.T) {
	f := newFixture()
	r, hm, _ := f.join(t, "u_doc", true)
	_, guest, gtab := f.join(t, "g_pat", false)
	f.join(t, "g_other", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	for _, typ := range []string{"admit", "deny", "remove"} {
		r.Handle(guest, msg(typ, "member", "g_other"))
		if code := errCode(gtab); code != "forbidden" {
			t.Errorf("guest %s: %q, want forbidden", typ, code)
		}
	}
	r.Handle(guest, msg("end"))
	if code := errCode(gtab); code != "forbidden" {
		t.Errorf("guest end: %q", code)
	}
}

func TestMalformedAndOversizedMessages(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	host.take()
	tests := []struct {
		name, code string
		raw        []byte
	}{
		{"not json", "malformed", []byte("{nope")},
		{"no type", "malformed", []byte(`{"id":"1"}`)},
		{"unknown type", "unknown-type", msg("teleport")},
		{"oversized", "too-large", []byte(`{"type":"chat","text":"` + strings.Repeat("a", MaxMessageBytes) + `"}`)},
		{"chat too long", "bad-field", msg("chat", "text", strings.Repeat("a", MaxChatBytes+1))},
		{"empty chat", "bad-field", msg("chat", "text", "   ")},
		{"wrong field type", "malformed", msg("chat", "text", 42)},
		{"sdp without fingerprint", "bad-sdp", msg("offer", "to", "g_pat", "sdp", "v=0\r\ns=-\r\n")},
		{"offer to nobody", "no-member", msg("offer", "to", "g_ghost", "sdp", sdp)},
		{"offer to self", "no-member", msg("offer", "to", "u_doc", "sdp", sdp)},
		{"candidate not object", "bad-field", msg("candidate", "to", "g_pat", "candidate", "x")},
		{"admit unknown", "no-member", msg("admit", "member", "g_ghost")},
	}
	for _, tt := range tests {
		r.Handle(hm, tt.raw)
		if code := errCode(host); code != tt.code {
			t.Errorf("%s: error %q, want %q", tt.name, code, tt.code)
		}
		host.take()
	}
}

func TestResumeWithinGraceKeepsAdmission(t *testing.T) {
	f := newFixture()
	r, hm, _ := f.join(t, "u_doc", true)
	_, guest, gtab := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	r.Handle(guest, msg("chat", "text", "my note"))

	f.hub.Disconnected(r, guest, gtab)
	f.clock = f.clock.Add(50 * time.Second)
	f.hub.sweep()
	_, _, again := f.join(t, "g_pat", false)
	if w := again.last("welcome"); w == nil || w["state"] != "admitted" {
		t.Fatalf("resumed state %v", w)
	}
	if adm := again.last("admitted"); adm == nil || len(adm["chat"].([]any)) != 1 {
		t.Fatalf("resumed tab lacks its chat: %v", adm)
	}

	// Past the grace period the place is gone and the guest waits again.
	f.hub.Disconnected(r, guest, again)
	f.clock = f.clock.Add(61 * time.Second)
	f.hub.sweep()
	_, _, third := f.join(t, "g_pat", false)
	if w := third.last("welcome"); w == nil || w["state"] != "lobby" {
		t.Fatalf("after grace: %v", w)
	}
	if got := strings.Join(f.audit.events, "|"); !strings.Contains(got, "session.aborted g_pat timed out") {
		t.Fatalf("audit = %s", got)
	}
}

func TestDenyRemoveAndEnd(t *testing.T) {
	f := newFixture()
	r, hm, _ := f.join(t, "u_doc", true)
	_, _, denied := f.join(t, "g_one", false)
	_, _, removed := f.join(t, "g_two", false)
	_, _, stays := f.join(t, "g_three", false)
	r.Handle(hm, msg("deny", "member", "g_one"))
	if denied.last("denied") == nil || !denied.closed {
		t.Fatal("denied guest not told and disconnected")
	}
	r.Handle(hm, msg("admit", "member", "g_two"))
	r.Handle(hm, msg("remove", "member", "g_two"))
	if removed.last("removed") == nil || !removed.closed {
		t.Fatal("removed guest not told and disconnected")
	}
	if err := f.hub.EndConsult(context.Background(), "c_1", "u_doc"); err != nil {
		t.Fatal(err)
	}
	if stays.last("ended") == nil || !stays.closed {
		t.Fatal("lobby guest not told the consult ended")
	}
	if _, _, err := f.hub.Join("c_1", Participant{ID: "g_four", Kind: "guest"}, &tab{}); err != ErrEnded {
		t.Fatalf("join after end: %v", err)
	}
	got := strings.Join(f.audit.events, "|")
	for _, want := range []string{"session.aborted g_one denied", "session.aborted g_two removed", "session.ended u_doc"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit lacks %q: %s", want, got)
		}
	}
}

func TestSlowTabIsDroppedWithoutBlockingOthers(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	_, _, slow := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	slow.mu.Lock()
	slow.full = true
	slow.mu.Unlock()
	r.Handle(hm, msg("chat", "text", "are you there?"))
	if !slow.closed {
		t.Fatal("a tab that cannot keep up was not dropped")
	}
	if host.last("chat") == nil {
		t.Fatal("the host missed its own chat")
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	for range 300 {
		r.Handle(hm, msg("ping"))
	}
	if errCode(host) != "rate-limited" {
		t.Fatal("300 messages at once were not limited")
	}
}
