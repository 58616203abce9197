package signaling

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/eventually"
)

// wsOf returns the member's current connection, nil once disconnected.
func wsOf(f *fixture, consultID, memberID string) *wsConn {
	r := f.hub.existing(consultID)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[memberID]
	if !ok || m.conn == nil {
		return nil
	}
	return m.conn.(*wsConn)
}

// An idle tab costs its reader goroutine only: once its messages are
// written the writer goroutine ends and the queue is released.
func TestIdleTabHoldsNoWriterOrQueue(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	c := wsOf(f, "c_ws", "u_doc")
	idle := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && c.queue == nil && c.code == 0
	}
	eventually.True(t, 5*time.Second, "the writer of an idle tab to end", idle)

	// A message starts a writer again, which ends once it is written.
	if err := doc.WriteJSON(map[string]any{"type": "ping", "id": "p1"}); err != nil {
		t.Fatal(err)
	}
	if p := readType(t, doc, "pong"); p["ref"] != "p1" {
		t.Fatalf("pong %v", p)
	}
	eventually.True(t, 5*time.Second, "the writer to end again", idle)
}

// An idle socket costs the server one goroutine, its reader: the HTTP
// handler that upgraded it has returned and no writer runs.
func TestIdleSocketsCostOneGoroutineEach(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	const n = 20
	before := runtime.NumGoroutine()
	for i := range n {
		readType(t, dial(fmt.Sprintf("g_%d", i), false), "welcome")
	}
	eventually.True(t, 5*time.Second, fmt.Sprintf("%d idle sockets to cost %d goroutines", n, n), func() bool {
		return runtime.NumGoroutine()-before <= n
	})
}

// A tab that stops reading is dropped once its queue is full, and sending
// to it never blocks the room meanwhile.
func TestSocketThatStopsReadingIsDroppedWithoutBlocking(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	pat := dial("g_pat", false) // reads nothing from here on
	readType(t, pat, "welcome")
	eventually.True(t, 5*time.Second, "the guest to join", func() bool { return wsOf(f, "c_ws", "g_pat") != nil })

	big := encode(chatOut{Type: "chat", ChatMessage: ChatMessage{Text: strings.Repeat("x", 60<<10)}})
	r := f.hub.existing("c_ws")
	r.mu.Lock()
	m := r.members["g_pat"]
	for range 2 * sendQueue * 4 { // far more than loopback buffers hold
		m.send(big)
	}
	r.mu.Unlock()
	eventually.True(t, 5*time.Second, "the stuck tab to be disconnected", func() bool { return wsOf(f, "c_ws", "g_pat") == nil })

	// The host's tab is unaffected.
	if err := doc.WriteJSON(map[string]any{"type": "ping", "id": "p2"}); err != nil {
		t.Fatal(err)
	}
	readType(t, doc, "pong")
}

// When the hub stops, every tab is told the server is going away.
func TestHubStopClosesSocketsGoingAway(t *testing.T) {
	f := newFixture()
	_, dial := wsServer(t, f)
	doc := dial("u_doc", true)
	readType(t, doc, "admitted")
	done := make(chan struct{})
	go func() { f.hub.socks.close(); close(done) }()
	doc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for err == nil {
		_, _, err = doc.ReadMessage()
	}
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("closed with %v, want going away", err)
	}
	<-done
	// A tab whose join raced the stop is disconnected by its own handler,
	// which may finish just after close returns.
	eventually.True(t, 5*time.Second, "the member to be disconnected after the hub stopped", func() bool { return wsOf(f, "c_ws", "u_doc") == nil })
	// A tab that connects afterwards is turned away at once.
	late := dial("u_doc", true)
	late.SetReadDeadline(time.Now().Add(5 * time.Second))
	for err = nil; err == nil; {
		_, _, err = late.ReadMessage()
	}
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("late tab closed with %v, want going away", err)
	}
}

// pipeDial connects a tab to f's hub over an in-memory pipe, so that the
// server's heartbeats and deadlines run on synctest's clock.
func pipeDial(t *testing.T, f *fixture, id string, host bool) *websocket.Conn {
	t.Helper()
	server, client := net.Pipe()
	public := &url.URL{Scheme: "http", Host: "localhost"}
	go func() {
		br := bufio.NewReader(server)
		req, err := http.ReadRequest(br)
		if err != nil {
			server.Close()
			return
		}
		w := &hijackable{conn: server, rw: bufio.NewReadWriter(br, bufio.NewWriter(server)), header: http.Header{}}
		ws, err := Upgrader(public).Upgrade(w, req, nil)
		if err != nil {
			server.Close()
			return
		}
		kind := "guest"
		if host {
			kind = "clinician"
		}
		f.hub.Serve(ws, "c_ws", Participant{ID: id, Name: "N " + id, Kind: kind, Host: host})
	}()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	c, _, err := d.Dial("ws://localhost/", http.Header{"Origin": {public.String()}})
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	var welcome map[string]any
	if err := c.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
		t.Fatalf("welcome %v: %v", welcome, err)
	}
	return c
}

// hijackable is the ResponseWriter of a request read from a pipe.
type hijackable struct {
	conn   net.Conn
	rw     *bufio.ReadWriter
	header http.Header
}

func (h *hijackable) Header() http.Header { return h.header }
func (h *hijackable) Write(b []byte) (int, error) {
	return 0, errors.New("not hijacked")
}
func (h *hijackable) WriteHeader(int) {}
func (h *hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, h.rw, nil
}

// The server pings an idle tab every 10 s, a tab that answers stays as
// long as it likes, and one that stops answering is dropped within 30 s.
func TestHeartbeatKeepsAnsweringTabsAndDropsSilentOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		doc := pipeDial(t, f, "u_doc", true)
		var pings atomic.Int32
		doc.SetPingHandler(func(s string) error {
			pings.Add(1)
			return doc.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(time.Second))
		})
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for {
				if _, _, err := doc.ReadMessage(); err != nil {
					return
				}
			}
		}()
		pat := pipeDial(t, f, "g_pat", false) // answers nothing from here on
		defer pat.Close()

		time.Sleep(deadAfter + time.Second)
		synctest.Wait()
		if wsOf(f, "c_ws", "g_pat") != nil {
			t.Errorf("a tab silent for %v is still connected", deadAfter)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if wsOf(f, "c_ws", "u_doc") == nil {
			t.Fatal("a tab answering heartbeats was dropped")
		}
		if n := pings.Load(); n < 32 || n > 34 {
			t.Errorf("%d pings in 5 min 31 s, want one every %v", n, pingEvery)
		}
		f.hub.socks.close()
		<-readerDone
		doc.Close()
	})
}
