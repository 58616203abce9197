package sfulink

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// readReply reads the node's next message other than a load report.
func readReply(t *testing.T, ws *websocket.Conn) message {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("node sent %q: %v", data, err)
		}
		if m.Type != typeLoad {
			return m
		}
	}
}

func TestBadMessagesGetClearErrors(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 0)
	ws, err := dialRaw(t, n.url, clientTLS(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	tests := []struct {
		name     string
		send     string
		wantType string
		wantID   uint64
		wantCode string
		binary   bool
	}{
		{"not JSON", `{"type":`, typeError, 0, codeBadRequest, false},
		{"unknown type", `{"type":"reboot","id":5}`, typeResult, 5, codeBadRequest, false},
		{"join without ids", `{"type":"join","id":6}`, typeResult, 6, codeBadRequest, false},
		{"join without request id", `{"type":"join","sid":"s1","room":"c_1","member":"m_1"}`, typeError, 0, codeBadRequest, false},
		{"join with a huge room id", `{"type":"join","id":7,"sid":"s1","room":"` + strings.Repeat("r", 300) + `","member":"m_1"}`, typeResult, 7, codeBadRequest, false},
		{"offer on an unknown session", `{"type":"offer","id":8,"sid":"nope","sdp":"v=0"}`, typeResult, 8, codeUnknownSession, false},
		{"join", `{"type":"join","id":9,"sid":"s1","room":"c_1","member":"m_1"}`, typeResult, 9, "", false},
		{"same session id again", `{"type":"join","id":10,"sid":"s1","room":"c_1","member":"m_2"}`, typeResult, 10, codeBadRequest, false},
		{"candidate missing", `{"type":"candidate","id":11,"sid":"s1"}`, typeResult, 11, codeBadRequest, false},
		{"offer that is no SDP", `{"type":"offer","id":12,"sid":"s1","sdp":"hello"}`, typeResult, 12, codeFailed, false},
		{"negative view", `{"type":"view","id":13,"sid":"s1","publisher":"m_2","width":-1,"height":5}`, typeResult, 13, codeFailed, false},
		{"view", `{"type":"view","id":14,"sid":"s1","publisher":"m_2","width":320,"height":180}`, typeResult, 14, "", false},
		{"record without a version", `{"type":"record","id":20,"rec":1,"room":"c_1"}`, typeResult, 20, codeBadRequest, false},
		{"record of a future version", `{"type":"record","id":21,"rec":1,"room":"c_1","v":2}`, typeResult, 21, codeBadRequest, false},
		{"record without a recording id", `{"type":"record","id":22,"room":"c_1","v":1}`, typeResult, 22, codeBadRequest, false},
		{"record without a request id", `{"type":"record","rec":1,"room":"c_1","v":1}`, typeError, 0, codeBadRequest, false},
		{"record of a room nobody joined", `{"type":"record","id":23,"rec":1,"room":"c_9","v":1}`, typeResult, 23, codeNoRoom, false},
		{"record", `{"type":"record","id":24,"rec":1,"room":"c_1","v":1}`, typeResult, 24, "", false},
		{"same recording id again", `{"type":"record","id":25,"rec":1,"room":"c_1","v":1}`, typeResult, 25, codeBadRequest, false},
		{"keyframe with a huge track id", `{"type":"keyframe","rec":1,"trackId":"` + strings.Repeat("t", 600) + `"}`, typeError, 0, codeBadRequest, false},
		{"media from signal", "\x01\x00", typeError, 0, codeBadRequest, true},
		{"stop the recording", `{"type":"stoprecord","rec":1}`, typeRecordEnd, 0, "", false},
	}
	for _, tt := range tests {
		kind := websocket.TextMessage
		if tt.binary {
			kind = websocket.BinaryMessage
		}
		if err := ws.WriteMessage(kind, []byte(tt.send)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		m := readReply(t, ws)
		if m.Type != tt.wantType || m.ID != tt.wantID || m.Code != tt.wantCode {
			t.Errorf("%s: reply %+v, want %s id %d code %q", tt.name, m, tt.wantType, tt.wantID, tt.wantCode)
		}
		if tt.wantCode != "" && m.Error == "" {
			t.Errorf("%s: error without an explanation", tt.name)
		}
	}
	if l := n.sfu.Load(); l.Participants != 1 {
		t.Fatalf("node load %+v, want the one good join", l)
	}
}

func TestOversizedMessageClosesOnlyThatLink(t *testing.T) {
	j := joinedClient(t)
	p, n, c, r, ctx := j.p, j.n, j.c, j.r, j.ctx

	ws, err := dialRaw(t, n.url, clientTLS(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	big := `{"type":"offer","id":1,"sid":"s1","sdp":"` + strings.Repeat("a", MaxMessage) + `"}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err = ws.ReadMessage(); err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversized message: %v, want close 1009 (message too big)", err)
	}

	// The node and the other link carry on.
	if _, err := c.Join(ctx, "c_1", "m_2", newRecorder()); err != nil {
		t.Fatalf("join after another link's oversized message: %v", err)
	}
	select {
	case err := <-r.closed:
		t.Fatalf("a session of another link got Closed(%v)", err)
	default:
	}
	if l := n.sfu.Load(); l.Participants != 2 {
		t.Fatalf("node load %+v", l)
	}
}

// FuzzLinkMessage sends arbitrary messages over an authenticated link: the
// node must answer or ignore each and keep the link, never crash. The node
// takes 4 participants, so joins in the corpus stay cheap.
func FuzzLinkMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","id":1,"sid":"s","room":"r","member":"m"}`,
		`{"type":"offer","id":2,"sid":"s","sdp":"v=0"}`,
		`{"type":"candidate","id":3,"sid":"s","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`,
		`{"type":"view","id":4,"sid":"s","publisher":"m","width":1e99}`,
		`{"type":"close","sid":"s"}`, `[]`, `null`, `{"id":-1}`, "\xff",
		`{"type":"record","id":5,"rec":1,"room":"r","v":1}`,
		`{"type":"keyframe","rec":1,"trackId":"m/video"}`, `{"type":"stoprecord","rec":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		p := newPKI(t)
		n := startNode(t, p, 4)
		ws, err := dialRaw(t, n.url, clientTLS(t, p))
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if err := ws.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatalf("write: %v", err)
		}
		// A probe after the input shows that the link and the node serve.
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"view","id":987654321987,"sid":"nope"}`)); err != nil {
			t.Fatalf("write: %v", err)
		}
		for {
			m := readReply(t, ws)
			if m.ID == 987654321987 {
				if m.Code != codeUnknownSession {
					t.Fatalf("reply %+v", m)
				}
				return
			}
		}
	})
}
