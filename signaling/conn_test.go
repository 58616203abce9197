package signaling

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsServer serves the hub over a real WebSocket; the participant is chosen
// by a query parameter, standing in for the HTTP layer's session check.
func wsServer(t *testing.T, f *fixture) (*httptest.Server, func(id string, host bool) *websocket.Conn) {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := url.Parse(srv.URL)
		ws, err := Upgrader(u).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		q := r.URL.Query()
		host := q.Get("host") == "1"
		kind := "guest"
		if host {
			kind = "clinician"
		}
		f.hub.Serve(ws, "c_ws", Participant{ID: q.Get("id"), Name: "N " + q.Get("id"), Kind: kind, Host: host})
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(f.hub.socks.close) // after the clients closed
	dial := func(id string, host bool) *websocket.Conn {
		t.Helper()
		h := "0"
		if host {
			h = "1"
		}
		hdr := http.Header{"Origin": {srv.URL}}
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?id="+id+"&host="+h, hdr)
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return srv, dial
}

func readType(t *testing.T, c *websocket.Conn, want string) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if m["type"] == want {
			return m
		}
	}
}

func TestWebSocketRefusesForeignOrigin(t *testing.T) {
	f := newFixture()
	srv, _ := wsServer(t, f)
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?id=g_x", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", err, resp)
	}
}

func TestWebSocketSessionEndToEnd(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	pat := dial("g_pat", false)
	if w := readType(t, pat, "welcome"); w["state"] != "lobby" {
		t.Fatalf("welcome %v", w)
	}
	readType(t, doc, "lobby")
	doc.WriteJSON(map[string]any{"type": "admit", "member": "g_pat"})
	readType(t, pat, "admitted")

	// An oversized message is refused with an error and the tab stays
	// connected.
	big, _ := json.Marshal(map[string]any{"type": "chat", "text": strings.Repeat("x", MaxMessageBytes)})
	pat.WriteMessage(websocket.TextMessage, big)
	if e := readType(t, pat, "error"); e["code"] != "too-large" {
		t.Fatalf("oversized: %v", e)
	}
	pat.WriteJSON(map[string]any{"type": "chat", "text": "still here"})
	if m := readType(t, doc, "chat"); m["text"] != "still here" {
		t.Fatalf("chat after refusal: %v", m)
	}
	// A binary frame is malformed, not fatal.
	pat.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if e := readType(t, pat, "error"); e["code"] != "malformed" {
		t.Fatalf("binary: %v", e)
	}

	// Ending closes every tab after telling it why.
	doc.WriteJSON(map[string]any{"type": "end"})
	readType(t, pat, "ended")
	pat.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := pat.ReadMessage(); err != nil {
			break
		}
	}
}

func TestVanishedTabKeepsItsPlaceUntilGrace(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	pat := dial("g_pat", false)
	readType(t, pat, "welcome")
	doc.WriteJSON(map[string]any{"type": "admit", "member": "g_pat"})
	readType(t, pat, "admitted")
	pat.UnderlyingConn().Close() // the phone loses its network

	deadline := time.Now().Add(5 * time.Second)
	for f.hub.Admitted("c_ws", "g_pat") {
		r := f.hub.existing("c_ws")
		r.mu.Lock()
		gone := r.members["g_pat"].conn == nil
		r.mu.Unlock()
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dropped connection was not noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !f.hub.Admitted("c_ws", "g_pat") {
		t.Fatal("the member lost its place at once")
	}
	again := dial("g_pat", false)
	if w := readType(t, again, "welcome"); w["state"] != "admitted" {
		t.Fatalf("resume: %v", w)
	}
}
