package signaling

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/media"
)

// stableCodes are the error codes of the protocol; a client never sees
// another.
var stableCodes = map[string]bool{}

func init() {
	for _, e := range []*ProtoError{ErrMalformed, ErrTooLarge, ErrUnknownType, ErrLobby, ErrForbidden, ErrNoMember,
		ErrBadSDP, ErrBadField, ErrRateLimited, ErrInternal, ErrMediaUnavailable, ErrNotRouted,
		ErrRecordingUnavailable, ErrRecordingBusy, ErrNotRecording, ErrNotAsked, ErrConsentRequired} {
		stableCodes[e.Code] = true
	}
}

// lobbySafe are the messages a guest may receive while it waits in the
// lobby: answers to its own messages, whether a clinician is connected
// (waiting), being let in or turned away, and, while the consult is
// recorded, the question whether it agrees (record-ask) and its end
// (recording).
var lobbySafe = map[string]bool{"welcome": true, "error": true, "pong": true, "ack": true, "waiting": true, "admitted": true, "denied": true, "removed": true, "ended": true,
	"record-ask": true, "recording": true}

// fuzzRoom is a consult with a host, an admitted guest and a guest in the
// lobby, each with a tab that records what it receives.
type fuzzRoom struct {
	f       *fixture
	r       *Room
	members [3]*Member // host, admitted guest, lobby guest
	tabs    [3]*tab
}

const fuzzLobby = 2

// refusingNodeDouble is a test double of a media node that can record but
// takes nobody: the fuzzed room needs no real node to reach every
// recording message.
type refusingNodeDouble struct{}

func (refusingNodeDouble) Join(context.Context, string, string, media.Events) (media.Participant, error) {
	return nil, media.ErrFull
}

func (refusingNodeDouble) Record(context.Context, string, media.RecordSink) (media.Recording, error) {
	return nil, media.ErrFull
}

func newFuzzRoom(t *testing.T) *fuzzRoom {
	fr := &fuzzRoom{f: newFixture()}
	fr.f.hub.deps.Media = refusingNodeDouble{}
	fr.f.hub.deps.Recordings = &recorderDouble{}
	t.Cleanup(fr.f.hub.stopMedia)
	fr.r, fr.members[0], fr.tabs[0] = fr.f.join(t, "u_doc", true)
	_, fr.members[1], fr.tabs[1] = fr.f.join(t, "g_in", false)
	fr.r.Handle(fr.members[0], msg("admit", "member", "g_in"))
	_, fr.members[2], fr.tabs[2] = fr.f.join(t, "g_lobby", false)
	for _, c := range fr.tabs {
		c.take()
	}
	return fr
}

// state is what a lobby guest must not be able to change.
type state struct {
	inRoom   [3]bool
	admitted [3]bool
	rights   [3]Right
	ended    bool
	chat     int
}

func (fr *fuzzRoom) state() state {
	var s state
	fr.r.mu.Lock()
	for i, m := range fr.members {
		s.inRoom[i] = fr.r.members[m.ID] == m
		s.admitted[i], s.rights[i] = m.admitted, m.rights
	}
	s.ended = fr.r.ended
	fr.r.mu.Unlock()
	h, _ := fr.f.chat.ChatHistory(context.Background(), "c_1")
	s.chat = len(h)
	return s
}

// send delivers one message from member who, as a binary frame when
// binary, and checks what every tab received.
func (fr *fuzzRoom) send(t *testing.T, who int, binary bool, raw []byte) {
	// "$REQ" stands for the recording request being asked, so that
	// answers can reach it.
	fr.r.mu.Lock()
	if fr.r.rec != nil {
		raw = bytes.ReplaceAll(raw, []byte("$REQ"), []byte(fr.r.rec.id))
	}
	fr.r.mu.Unlock()
	before := fr.state()
	live := before.inRoom[who] && !before.ended
	if binary {
		fr.r.refuse(fr.members[who], len(raw), ErrMalformed)
	} else {
		fr.r.Handle(fr.members[who], raw)
	}
	after := fr.state()
	var got [3][]map[string]any
	for i, c := range fr.tabs {
		got[i] = c.take()
		for _, m := range got[i] {
			if m["type"] == "error" && !stableCodes[m["code"].(string)] {
				t.Fatalf("error with unstable code %v", m)
			}
		}
	}

	// Malformed input is answered with an error of a stable code.
	_, bad := readEnvelope(raw)
	if binary {
		bad = ErrMalformed
	}
	if live && bad != nil && !hasError(got[who], bad.Code) {
		t.Fatalf("input %q answered with %v, want error %s", raw, got[who], bad.Code)
	}

	// A guest in the lobby sees nothing of the consult.
	if !after.admitted[fuzzLobby] {
		for _, m := range got[fuzzLobby] {
			if !lobbySafe[m["type"].(string)] {
				t.Fatalf("the lobby guest received %v", m)
			}
			if _, ok := m["clinician"].(bool); m["type"] == "waiting" && (len(m) != 2 || !ok) {
				t.Fatalf("the lobby guest learnt more than whether a clinician is connected: %v", m)
			}
		}
	}

	// A guest in the lobby reaches no right it lacks: whatever it sends
	// changes nothing but its own presence (leave) and its own answer to a
	// recording question, and reaches others only as the lobby list and
	// roster that follow; an answer reaches the host as its lobby list.
	if who != fuzzLobby || !live || before.admitted[fuzzLobby] {
		return
	}
	want := before
	want.inRoom[fuzzLobby] = after.inRoom[fuzzLobby]
	if after != want {
		t.Fatalf("a lobby guest's %q changed the room: %+v, was %+v", raw, after, before)
	}
	env, _ := readEnvelope(raw)
	for i := range 2 {
		for _, m := range got[i] {
			typ := m["type"]
			answer := env.Type == "record-consent" && i == 0 && typ == "lobby"
			if !answer && (after.inRoom[fuzzLobby] || typ != "lobby" && typ != "roster") {
				t.Fatalf("a lobby guest's %q reached %s: %v", raw, fr.members[i].ID, m)
			}
		}
	}
}

func hasError(msgs []map[string]any, code string) bool {
	for _, m := range msgs {
		if m["type"] == "error" && (m["code"] == code || m["code"] == ErrRateLimited.Code) {
			return true
		}
	}
	return false
}

// FuzzHandle feeds arbitrary client messages through the room's real
// dispatch. Each line of the input is one message; its first byte picks
// the sender (host, admitted guest, lobby guest) and, with its high bit,
// a binary frame. Nothing may panic, malformed input is always answered
// with an error of a stable code, and a lobby guest changes nothing and
// sees nothing.
func FuzzHandle(f *testing.F) {
	const offerSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n"
	bodies := [][]byte{
		msg("offer", "to", "g_in", "sdp", offerSDP), msg("answer", "to", "u_doc", "sdp", offerSDP),
		msg("candidate", "to", "u_doc", "candidate", map[string]any{"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host"}),
		msg("media-state", "audio", true), msg("chat", "text", "hello"), msg("admit", "member", "g_lobby"),
		msg("deny", "member", "g_lobby"), msg("remove", "member", "g_in"), msg("end"), msg("sfu-join"), msg("sfu-leave"),
		msg("view", "member", "u_doc", "width", 640, "height", 360), msg("ping"), msg("leave"), msg("teleport"),
		msg("record-start"), msg("record-stop"), msg("record-consent", "request", "$REQ", "consent", true),
		msg("record-consent", "request", "$REQ", "consent", false), msg("record-consent", "request", "$REQ", "consent", true, "member", "u_doc"),
		[]byte("{nope"), []byte(`{"id":"1"}`), []byte(`{"type":7}`), []byte(`[]`), []byte(`null`), []byte(`{"type":"chat","text":` + strings.Repeat("[", 40) + `}`),
	}
	for _, b := range bodies {
		for who := range byte(3) {
			f.Add(append([]byte{who}, b...))
		}
	}
	f.Add([]byte("\x00" + string(msg("admit", "member", "g_lobby")) + "\n\x02" + string(msg("chat", "text", "in now"))))
	f.Add([]byte("\x02" + string(msg("leave")) + "\n\x02" + string(msg("chat", "text", "still?"))))
	f.Add([]byte("\x82{\"type\":\"ping\"}"))
	f.Add([]byte("\x00" + string(msg("record-start")) + "\n\x01" + string(msg("record-consent", "request", "$REQ", "consent", true)) +
		"\n\x02" + string(msg("record-consent", "request", "$REQ", "consent", false))))
	f.Add([]byte("\x00" + `{"type":"chat","text":"` + strings.Repeat("a", MaxMessageBytes) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFuzzRoom(t)
		for i, line := range bytes.Split(data, []byte{'\n'}) {
			if i == 32 {
				break // a longer input only repeats what 32 messages reach
			}
			if len(line) == 0 {
				continue
			}
			fr.send(t, int(line[0]&0x7f)%3, line[0]&0x80 != 0, line[1:])
		}
	})
}

// FuzzBusMessage feeds arbitrary bytes to a replica as messages from the
// bus: nothing panics, and a message that is not for a known tab or
// consult changes nothing.
func FuzzBusMessage(f *testing.F) {
	f.Add([]byte(`{"k":"frame","f":"b","c":"x"}` + "\n" + `{"type":"chat","text":"hi"}`))
	f.Add([]byte(`{"k":"join","f":"b","c":"x","r":"c_1"}` + "\n" + `{"id":""}`))
	f.Add([]byte(`{"k":"out","f":"b","c":"x"}`))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewCluster(RoomDeps{Chat: &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}, Audit: &auditLog{},
			Log: slog.New(slog.DiscardHandler)}, ClusterConfig{Replica: "a", Log: slog.New(slog.DiscardHandler)})
		c.deliver("b", b)
		c.work.Wait()
		if len(c.hub.rooms) != 0 {
			t.Fatalf("a bus message made a room: %q", b)
		}
	})
}
