package signaling

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/eventually"
)

func (t *tab) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (f *fixture) joinAs(t *testing.T, p Participant) (*Room, *Member, *tab) {
	t.Helper()
	c := &tab{}
	r, m, err := f.hub.Join("c_1", p, c)
	if err != nil {
		t.Fatal(err)
	}
	return r, m, c
}

func (f *fixture) auditCount(prefix string) int {
	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	n := 0
	for _, e := range f.audit.events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// A clinician whose account is disabled keeps an open call page: the page
// must lose the room at once, and an admit or a chat it still sends must
// change nothing.
func TestClosedAccountCanNoLongerAdmitOrChat(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	_, _, waiting := f.join(t, "g_wait", false)
	_, _, pat := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	pat.take()

	if n := f.hub.CloseAccount("u_doc"); n != 1 {
		t.Fatalf("CloseAccount took %d members out, want 1", n)
	}
	if host.last(CloseRevoked) == nil || !host.isClosed() {
		t.Fatal("the clinician's tab was not told and closed")
	}
	r.Handle(hm, msg("admit", "member", "g_wait"))
	r.Handle(hm, msg("chat", "text", "still here"))
	if waiting.last("admitted") != nil {
		t.Fatal("a closed account admitted a guest")
	}
	if pat.last("chat") != nil {
		t.Fatal("a closed account's chat reached the patient")
	}
	if ros := pat.last("roster"); ros == nil || len(ros["members"].([]any)) != 1 {
		t.Fatalf("the patient's roster still lists the clinician: %v", ros)
	}
	if n := f.auditCount("session.aborted u_doc revoked"); n != 1 {
		t.Fatalf("%d audit records of the dismissal, want 1: %v", n, f.audit.events)
	}
	// A guest whose id happens to match is not an account.
	if n := f.hub.CloseAccount("g_pat"); n != 0 {
		t.Fatalf("CloseAccount took %d guests out", n)
	}
}

func TestWithdrawnLinkTakesItsGuestsOut(t *testing.T) {
	f := newFixture()
	r, hm, _ := f.join(t, "u_doc", true)
	_, gm, patient := f.joinAs(t, Participant{ID: "g_pat", Kind: "guest", Link: "l_patient"})
	_, _, interp := f.joinAs(t, Participant{ID: "g_int", Kind: "guest", Link: "l_interp"})
	_, _, lobby := f.joinAs(t, Participant{ID: "g_two", Kind: "guest", Link: "l_patient"})
	r.Handle(hm, msg("admit", "member", "g_pat"))
	r.Handle(hm, msg("admit", "member", "g_int"))

	if n := f.hub.CloseLink("c_1", "l_patient"); n != 2 {
		t.Fatalf("CloseLink took %d guests out, want 2", n)
	}
	for name, c := range map[string]*tab{"admitted": patient, "waiting": lobby} {
		if c.last(CloseRevoked) == nil || !c.isClosed() {
			t.Errorf("the %s guest of the withdrawn link was not told and closed", name)
		}
	}
	if interp.isClosed() {
		t.Fatal("the guest of another link was closed")
	}
	interp.take()
	r.Handle(gm, msg("chat", "text", "sent after the link was withdrawn"))
	if interp.last("chat") != nil {
		t.Fatal("a withdrawn guest's chat was delivered")
	}
	if n := f.hub.CloseLink("c_other", "l_patient"); n != 0 {
		t.Fatalf("CloseLink of a consult without a room = %d", n)
	}
}

// The host's end message and the dashboard's button take one path: the
// record ends (links dead), every tab is told and closed, and the end is
// audited once.
func TestEndMessageEndsTheConsultLikeTheButton(t *testing.T) {
	f := newFixture()
	r, hm, host := f.join(t, "u_doc", true)
	_, _, pat := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))

	r.Handle(hm, msg("end"))
	if got := f.records.finished; len(got) != 1 || got[0] != "c_1" {
		t.Fatalf("records finished %v, want [c_1]", got)
	}
	for name, c := range map[string]*tab{"host": host, "patient": pat} {
		if c.last(CloseEnded) == nil || !c.isClosed() {
			t.Errorf("%s not told the consult ended", name)
		}
	}
	if err := f.hub.EndConsult(context.Background(), "c_1", "u_doc"); err != nil {
		t.Fatal(err)
	}
	if n := f.auditCount("session.ended"); n != 1 {
		t.Fatalf("session.ended audited %d times, want once", n)
	}
	if _, _, err := f.hub.Join("c_1", Participant{ID: "g_pat", Kind: "guest"}, &tab{}); !errors.Is(err, ErrEnded) {
		t.Fatalf("reconnect after end: %v", err)
	}
}

func TestEndIsRefusedWhenTheRecordCannotEnd(t *testing.T) {
	f := newFixture()
	f.records.fail = errors.New("database is locked")
	r, hm, host := f.join(t, "u_doc", true)
	_, _, pat := f.join(t, "g_pat", false)
	r.Handle(hm, msg("end", "id", "e1"))
	if errCode(host) != "internal" || pat.isClosed() {
		t.Fatalf("end without a record: host error %q, patient closed %v", errCode(host), pat.isClosed())
	}
	if f.auditCount("session.ended") != 0 {
		t.Fatal("an end that did not happen was audited")
	}
}

// A denied or removed guest cannot come back with the same guest session:
// the session ends in the records and the room bars the guest.
func TestDeniedOrRemovedGuestCannotKnockAgain(t *testing.T) {
	f := newFixture()
	r, hm, _ := f.join(t, "u_doc", true)
	f.join(t, "g_denied", false)
	f.join(t, "g_removed", false)
	r.Handle(hm, msg("deny", "member", "g_denied"))
	r.Handle(hm, msg("admit", "member", "g_removed"))
	r.Handle(hm, msg("remove", "member", "g_removed"))
	if got := strings.Join(f.records.denied, ","); got != "g_denied,g_removed" {
		t.Fatalf("guest sessions ended: %q", got)
	}
	for _, id := range []string{"g_denied", "g_removed"} {
		if _, _, err := f.hub.Join("c_1", Participant{ID: id, Kind: "guest"}, &tab{}); !errors.Is(err, ErrBarred) {
			t.Errorf("%s knocked again: %v", id, err)
		}
	}
	for err, want := range map[error]string{ErrBarred: `"type":"denied"`, ErrEnded: `"type":"ended"`, errors.New("audit: disk full"): `"code":"internal"`} {
		if got := string(refusal(err)); !strings.Contains(got, want) {
			t.Errorf("refused for %v: %s, want %s", err, got, want)
		}
	}
}

func TestRelayOnlyFailsClosedAndIsReadOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		flag bool
		err  error
		want string
	}{
		{"set", true, nil, "relay"},
		{"not set", false, nil, "all"},
		{"unreadable", false, errors.New("database is locked"), "relay"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			var reads atomic.Int32
			f.hub.deps.RelayOnly = func(ctx context.Context, _ string) (bool, error) {
				reads.Add(1)
				if _, ok := ctx.Deadline(); !ok {
					t.Error("relay-only flag read without a deadline")
				}
				return tt.flag, tt.err
			}
			r, hm, host := f.join(t, "u_doc", true)
			for _, id := range []string{"g_one", "g_two"} {
				_, _, g := f.join(t, id, false)
				r.Handle(hm, msg("admit", "member", id))
				if got := g.last("admitted")["iceTransportPolicy"]; got != tt.want {
					t.Fatalf("%s got policy %v, want %s", id, got, tt.want)
				}
			}
			if got := host.last("admitted")["iceTransportPolicy"]; got != tt.want {
				t.Fatalf("host got policy %v, want %s", got, tt.want)
			}
			if n := reads.Load(); n != 1 {
				t.Fatalf("flag read %d times, want once per room", n)
			}
		})
	}
}

// stuckChat is a chat log whose writes wait for the database until their
// context ends, as SQLite does while another writer holds its lock (or
// until the test lets go).
type stuckChat struct {
	memChat
	started  atomic.Bool
	deadline atomic.Bool // whether the stuck write had a deadline
	release  chan struct{}
}

func (c *stuckChat) AppendChat(ctx context.Context, _ string, _ ChatMessage) (ChatMessage, error) {
	_, ok := ctx.Deadline()
	c.deadline.Store(ok)
	c.started.Store(true)
	select {
	case <-ctx.Done():
		return ChatMessage{}, ctx.Err()
	case <-c.release:
		return ChatMessage{}, errors.New("released by the test")
	}
}

func TestStuckChatWriteHoldsNeitherTheRoomNorForever(t *testing.T) {
	f := newFixture()
	chat := &stuckChat{memChat: memChat{msgs: map[string][]ChatMessage{}, now: time.Now}, release: make(chan struct{})}
	f.hub.deps.Chat = chat
	f.hub.deps.IOTimeout = 200 * time.Millisecond
	r, hm, host := f.join(t, "u_doc", true)
	_, gm, pat := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	host.take()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(chat.release)
	wg.Go(func() { r.Handle(gm, msg("chat", "id", "c1", "text", "hello")) })
	eventually.True(t, 5*time.Second, "the chat write to start", chat.started.Load)
	if !chat.deadline.Load() {
		t.Error("the chat write has no deadline")
	}
	wg.Go(func() { r.Handle(hm, msg("ping", "id", "p1")) })
	eventually.True(t, 5*time.Second, "the host's pong while another member's chat write is stuck", func() bool { return host.last("pong") != nil })
	eventually.True(t, 5*time.Second, "the sender to learn its chat failed", func() bool {
		e := pat.last("error")
		return e != nil && e["code"] == "internal" && e["ref"] == "c1"
	})
}

// fakeSession is a sign-in session whose end and validity the test sets.
type fakeSession struct {
	mu     sync.Mutex
	end    time.Time
	ended  bool
	checks int
}

func (s *fakeSession) Check(context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks++
	if s.ended {
		return time.Time{}, ErrSessionEnded
	}
	return s.end, nil
}

func (s *fakeSession) set(end time.Time, ended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.end, s.ended = end, ended
}

func TestTabClosesWhenItsSessionEnds(t *testing.T) {
	for _, tt := range []struct {
		name    string
		closeAt time.Duration // after the tab opened
		ended   bool          // the session ended before the tab opened
		end     time.Duration // the session's absolute end
		signOut time.Duration // when the session is signed out elsewhere; 0 never
	}{
		{name: "at the absolute end", closeAt: 150 * time.Second, end: 150 * time.Second},
		{name: "at the next check after a sign-out", closeAt: 2 * time.Minute, end: time.Hour, signOut: 90 * time.Second},
		{name: "at once when it ended before the tab opened", ended: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture()
				start := time.Now()
				s := &fakeSession{end: start.Add(tt.end), ended: tt.ended}
				r, hm, host := f.join(t, "u_doc", true)
				_, _, pat := f.join(t, "g_pat", false)
				r.Handle(hm, msg("admit", "member", "g_pat"))
				var wg sync.WaitGroup
				defer wg.Wait()
				defer f.hub.watchSession(r, hm, host, s)()
				if tt.signOut > 0 {
					wg.Go(func() {
						time.Sleep(tt.signOut)
						s.set(time.Time{}, true)
					})
				}
				if tt.closeAt > 0 {
					time.Sleep(tt.closeAt - time.Millisecond)
					synctest.Wait()
					if host.isClosed() {
						t.Fatal("closed before the session ended")
					}
					time.Sleep(time.Millisecond)
				}
				synctest.Wait()
				if host.last(CloseExpired) == nil || !host.isClosed() {
					t.Fatal("the tab was not told and closed when its session ended")
				}
				if ros := pat.last("roster"); len(ros["members"].([]any)) != 1 {
					t.Fatalf("the member stays in the roster: %v", ros)
				}
				r.Handle(hm, msg("chat", "text", "after the end"))
				if pat.last("chat") != nil {
					t.Fatal("a message sent after the session ended was acted on")
				}
			})
		})
	}
}

func TestOpenTabChecksItsSessionEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		s := &fakeSession{end: time.Now().Add(time.Hour)}
		r, hm, host := f.join(t, "u_doc", true)
		stop := f.hub.watchSession(r, hm, host, s)
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		s.mu.Lock()
		checks := s.checks
		s.mu.Unlock()
		if checks != 6 { // at the start, then each minute
			t.Fatalf("%d checks in five minutes, want 6", checks)
		}
		stop()
		if host.isClosed() {
			t.Fatal("a valid session's tab was closed")
		}
	})
}

// Over a real WebSocket: a tab whose session is gone when it opens is told
// "expired" and closed; a denied guest that connects again is told
// "denied".
func TestWebSocketClosesTabsWithoutAValidSessionOrBarred(t *testing.T) {
	f := newFixture()
	ended := &fakeSession{ended: true}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := url.Parse(srv.URL)
		ws, err := Upgrader(u).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		p := Participant{ID: r.URL.Query().Get("id"), Kind: "guest"}
		if r.URL.Query().Get("session") == "ended" {
			p.Session = ended
		}
		f.hub.Serve(ws, "c_1", p)
	}))
	defer srv.Close()
	dial := func(query string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?"+query, http.Header{"Origin": {srv.URL}})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closes := func(c *websocket.Conn, code string) {
		t.Helper()
		readType(t, c, code)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("still open after %q", code)
				}
				return
			}
		}
	}

	closes(dial("id=g_gone&session=ended"), CloseExpired)

	r, hm, _ := f.join(t, "u_doc", true)
	g := dial("id=g_knock")
	readType(t, g, "welcome")
	r.Handle(hm, msg("deny", "member", "g_knock"))
	closes(g, CloseDenied)
	closes(dial("id=g_knock"), CloseDenied)
}
