package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/tools/internal/devsignal"
)

// inMsg is every field the participants read from server messages.
type inMsg struct {
	Type      string          `json:"type"`
	Member    string          `json:"member"`
	State     string          `json:"state"`
	Route     string          `json:"route"`
	Restart   bool            `json:"restart"`
	From      string          `json:"from"`
	SDP       string          `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"`
	Waiting   []struct {
		ID string `json:"id"`
	} `json:"waiting"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// sfuPeer is the to and from of messages between a member and the node.
const sfuPeer = "sfu"

// roomState is one consult as the run drives it.
type roomState struct {
	consult devsignal.Consult
	size    int
	hostUp  chan struct{} // closed when the host's socket is welcomed
	upOnce  sync.Once

	mu       sync.Mutex
	ids      map[*member]string // server member ids, from welcome
	admitted map[string]bool    // guests the host admitted
	allIDs   chan struct{}      // closed when every member has its id
}

func newRoomState(c devsignal.Consult, size int) *roomState {
	return &roomState{consult: c, size: size, hostUp: make(chan struct{}), ids: map[*member]string{}, admitted: map[string]bool{}, allIDs: make(chan struct{})}
}

func (r *roomState) setID(m *member, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[m] = id
	if len(r.ids) == r.size {
		close(r.allIDs)
	}
}

// wsMember is one participant's signaling WebSocket. Its read loop and
// the node join it starts are its goroutines, which close stops.
type wsMember struct {
	m    *member
	host bool
	room *roomState
	view [2]int

	conn    *websocket.Conn
	writeMu sync.Mutex // gorilla allows one writer at a time
	once    sync.Once  // the node join happens once
	started chan error // the node join's outcome; buffered
	closing atomic.Bool
	wg      sync.WaitGroup
}

// connect opens the socket with the participant's session cookie and the
// site's Origin, reads the welcome, and starts the read loop.
func (w *wsMember) connect(ctx context.Context, s *devsignal.Proc, cookies []*http.Cookie, source int) error {
	d := websocket.Dialer{NetDialContext: s.Dialer(nil), TLSClientConfig: s.TLSConfig(), HandshakeTimeout: 15 * time.Second}
	if !w.host {
		d.NetDialContext = s.Dialer(devsignal.GuestSource(source))
	}
	h := http.Header{"Origin": {s.Public.String()}}
	var parts []string
	for _, c := range cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	h.Set("Cookie", strings.Join(parts, "; "))
	u := *s.Public
	u.Scheme = "wss"
	u.Path = "/ws/consults/" + w.room.consult.ID
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("websocket: %s: %w", resp.Status, err)
		}
		return fmt.Errorf("websocket: %w", err)
	}
	w.conn = conn
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var welcome inMsg
	if err := conn.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" || welcome.Member == "" {
		conn.Close()
		return fmt.Errorf("websocket: no welcome (%q): %w", welcome.Type, err)
	}
	_ = conn.SetReadDeadline(time.Time{}) // the server's pings keep it alive
	w.room.setID(w.m, welcome.Member)
	if w.host {
		w.room.upOnce.Do(func() { close(w.room.hostUp) })
	}
	w.wg.Go(w.readLoop)
	return nil
}

func (w *wsMember) send(v any) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return w.conn.WriteJSON(v)
}

func (w *wsMember) readLoop() {
	for {
		_, data, err := w.conn.ReadMessage()
		if err != nil {
			if !w.closing.Load() {
				w.m.peer.fail(fmt.Errorf("websocket: %w", err))
			}
			return
		}
		var msg inMsg
		if json.Unmarshal(data, &msg) == nil {
			w.handle(msg)
		}
	}
}

func (w *wsMember) handle(msg inMsg) {
	p := w.m.peer
	switch msg.Type {
	case "admitted", "route":
		switch {
		case msg.Restart:
			p.fail(errors.New("the server asked for a new node session (route restart)"))
		case msg.Route == "sfu":
			w.once.Do(func() { w.wg.Go(w.joinNode) })
		}
	case "lobby":
		if w.host {
			w.admit(msg)
		}
	case "offer":
		if msg.From == sfuPeer { // peer-to-peer offers are for browsers
			p.Offer(msg.SDP)
		}
	case "answer":
		if msg.From == sfuPeer {
			p.Answer(msg.SDP)
		}
	case "candidate":
		var c webrtc.ICECandidateInit
		if msg.From == sfuPeer && json.Unmarshal(msg.Candidate, &c) == nil {
			_ = p.pc.AddICECandidate(c)
		}
	case "speaker":
		p.Speaker(msg.Member)
	case "error":
		p.fail(fmt.Errorf("server refused a message: %s: %s", msg.Code, msg.Message))
	case "ended", "removed", "denied":
		p.fail(fmt.Errorf("server sent %s", msg.Type))
	}
}

// admit lets in every guest waiting in the host's consult; they are all
// the run's own.
func (w *wsMember) admit(msg inMsg) {
	var todo []string
	w.room.mu.Lock()
	for _, g := range msg.Waiting {
		if !w.room.admitted[g.ID] {
			w.room.admitted[g.ID] = true
			todo = append(todo, g.ID)
		}
	}
	w.room.mu.Unlock()
	for _, id := range todo {
		if err := w.send(map[string]string{"type": "admit", "member": id}); err != nil {
			w.m.peer.fail(fmt.Errorf("admit: %w", err))
		}
	}
}

// joinNode opens the member's node session and sends its offer, then
// tells the node at what size each publisher is shown.
func (w *wsMember) joinNode() {
	err := w.joinNodeErr()
	w.started <- err
}

func (w *wsMember) joinNodeErr() error {
	w.m.peer.joinAt.Store(int64(w.m.peer.since()))
	if err := w.send(map[string]string{"type": "sfu-join"}); err != nil {
		return fmt.Errorf("sfu-join: %w", err)
	}
	if err := w.m.peer.start(wsNode{w}); err != nil {
		return err
	}
	if w.view == [2]int{} {
		return nil
	}
	select {
	case <-w.room.allIDs:
	case <-w.m.peer.ctx.Done():
		return nil
	}
	w.room.mu.Lock()
	var pubs []string
	for m, id := range w.room.ids {
		if m != w.m && m.publish {
			pubs = append(pubs, id)
		}
	}
	w.room.mu.Unlock()
	for _, id := range pubs {
		if err := w.send(map[string]any{"type": "view", "member": id, "width": w.view[0], "height": w.view[1]}); err != nil {
			return fmt.Errorf("view: %w", err)
		}
	}
	return nil
}

// close leaves the consult for good and waits for the member's goroutines.
func (w *wsMember) close() {
	if w.conn == nil {
		return
	}
	w.closing.Store(true)
	_ = w.send(map[string]string{"type": "leave"})
	w.writeMu.Lock()
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	w.writeMu.Unlock()
	w.conn.Close()
	w.wg.Wait()
}

// wsNode sends a participant's descriptions to its node session through
// the signaling socket.
type wsNode struct{ w *wsMember }

func (n wsNode) Offer(sdp string) error {
	return n.w.send(map[string]string{"type": "offer", "to": sfuPeer, "sdp": sdp})
}

func (n wsNode) Answer(sdp string) error {
	return n.w.send(map[string]string{"type": "answer", "to": sfuPeer, "sdp": sdp})
}
