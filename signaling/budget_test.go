package signaling

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Every message a member sends counts against its rate budget, valid or
// not: a flood of refused messages is limited like a flood of pings.
func TestFloodOfRefusedMessagesIsRateLimited(t *testing.T) {
	tests := []struct {
		name  string
		guest bool // sent by a lobby guest rather than the host
		raw   []byte
	}{
		{"valid pings", false, msg("ping")},
		{"invalid JSON", false, []byte("{nope")},
		{"no type", false, []byte(`{"id":"1"}`)},
		{"oversized", false, []byte(`{"type":"chat","text":"` + strings.Repeat("a", MaxMessageBytes) + `"}`)},
		{"unknown type", false, msg("teleport")},
		{"no right (lobby)", true, msg("chat", "text", "hello?")},
		{"bad field", false, msg("chat", "text", "   ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			r, m, c := f.join(t, "u_doc", true)
			if tt.guest {
				_, m, c = f.join(t, "g_pat", false)
			}
			c.take()
			for range 300 {
				r.Handle(m, tt.raw)
			}
			codes := map[string]int{}
			for _, e := range c.take() {
				if e["type"] == "error" {
					codes[e["code"].(string)]++
				}
			}
			if codes["rate-limited"] < 50 {
				t.Fatalf("300 messages at once: %v, want most of them rate-limited", codes)
			}
		})
	}
}

// Binary frames and oversized frames on a real socket count too, and
// beyond the budget get the same answer as too many valid messages.
func TestWebSocketFloodOfBadFramesIsRateLimited(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	big := []byte(`{"type":"chat","text":"` + strings.Repeat("a", MaxMessageBytes) + `"}`)
	for i := range 600 {
		typ, b := websocket.BinaryMessage, []byte{1, 2, 3}
		if i%8 == 7 {
			typ, b = websocket.TextMessage, big
		}
		if err := doc.WriteMessage(typ, b); err != nil {
			t.Fatal(err)
		}
	}
	if e := readCode(t, doc, "rate-limited"); e == nil {
		t.Fatal("a flood of binary and oversized frames was never rate-limited")
	}
}

// readCode reads until an error message with code arrives, and returns it;
// nil when the socket closes or stays silent first.
func readCode(t *testing.T, c *websocket.Conn, code string) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			return nil
		}
		if m["type"] == "error" && m["code"] == code {
			return m
		}
	}
}
