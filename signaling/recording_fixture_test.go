package signaling

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording"
)

// recorderDouble is a test double of the recording service: it remembers
// the requests it was given and hands out activeDoubles.
type recorderDouble struct {
	mu      sync.Mutex
	starts  []recording.StartRequest
	actives []*activeDouble
	fail    error
}

func (d *recorderDouble) Start(_ context.Context, req recording.StartRequest) (recording.Active, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	d.starts = append(d.starts, req)
	a := &activeDouble{id: "r_double", done: make(chan struct{})}
	d.actives = append(d.actives, a)
	return a, nil
}

func (d *recorderDouble) started() []recording.StartRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]recording.StartRequest(nil), d.starts...)
}

func (d *recorderDouble) active(t *testing.T) *activeDouble {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.actives) != 1 {
		t.Fatalf("%d recordings started, want 1", len(d.actives))
	}
	return d.actives[0]
}

// activeDouble is a test double of a running recording.
type activeDouble struct {
	id     string
	mu     sync.Mutex
	stops  []string
	closed bool
	done   chan struct{}
}

func (a *activeDouble) ID() string { return a.id }

func (a *activeDouble) Stop(_ context.Context, reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, reason)
	a.endLocked()
	return nil
}

func (a *activeDouble) Done() <-chan struct{} { return a.done }

// fail ends the recording on its own, as when the media node is lost.
func (a *activeDouble) fail() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endLocked()
}

func (a *activeDouble) endLocked() {
	if !a.closed {
		a.closed = true
		close(a.done)
	}
}

func (a *activeDouble) stoppedWith() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.stops...)
}

// recordableNodeDouble is the in-process media node with a test double of
// media.Recorder added: the recorderDouble never calls it.
type recordableNodeDouble struct{ MediaNode }

func (recordableNodeDouble) Record(context.Context, string, media.RecordSink) (media.Recording, error) {
	return nil, errors.New("recordableNodeDouble does not record")
}

// recFixture is a consult whose host may record, with a recorderDouble.
type recFixture struct {
	*fixture
	rec *recorderDouble
}

func newRecFixture(t *testing.T) *recFixture {
	f := &recFixture{fixture: newFixture(), rec: &recorderDouble{}}
	f.hub.deps.Media = recordableNodeDouble{newSFU(t, 0)}
	f.hub.deps.Recordings = f.rec
	f.hub.deps.RecordingPolicy = RecordingPolicy{Viewers: []string{"admin"}, Retention: 90 * 24 * time.Hour}
	f.hub.deps.SFUReturnAfter = 10 * time.Second
	return f
}

// member is one member's side in a recording test.
type member struct {
	m   *Member
	tab *tab
}

// consult starts a consult with the host and the guests admitted.
func (f *recFixture) consult(t *testing.T, guests ...string) (*Room, map[string]member) {
	t.Helper()
	r, hm, htab := f.join(t, "u_doc", true)
	out := map[string]member{"u_doc": {hm, htab}}
	for _, id := range guests {
		_, m, tb := f.join(t, id, false)
		r.Handle(hm, msg("admit", "member", id))
		out[id] = member{m, tb}
	}
	for _, p := range out {
		p.tab.take()
	}
	return r, out
}

// request asks to record and returns the request id the guests were asked.
func request(t *testing.T, r *Room, host member) string {
	t.Helper()
	host.tab.take()
	r.Handle(host.m, msg("record-start"))
	if code := errCode(host.tab); code != "" {
		t.Fatalf("record-start: %s", code)
	}
	st := host.tab.last("recording")
	if st == nil {
		t.Fatalf("the host was not told the recording state: %v", host.tab.types())
	}
	return st["request"].(string)
}

func consentMsg(request string, yes bool) []byte {
	return msg("record-consent", "request", request, "consent", yes)
}

// recStateOf returns the last recording state a tab was told, and why.
func recStateOf(tb *tab) (string, string) {
	m := tb.last("recording")
	if m == nil {
		return "", ""
	}
	reason, _ := m["reason"].(string)
	return m["state"].(string), reason
}

// joinNode does what a browser does on `route: sfu`: opens its session on
// the media node.
func joinNode(t *testing.T, r *Room, ps map[string]member) {
	t.Helper()
	for id, p := range ps {
		r.mu.Lock()
		admitted := p.m.admitted && r.members[id] == p.m
		r.mu.Unlock()
		if !admitted {
			continue
		}
		r.Handle(p.m, msg("sfu-join"))
		if code := errCode(p.tab); code != "" {
			t.Fatalf("%s sfu-join: %s", id, code)
		}
	}
}

func (f *recFixture) auditHas(t *testing.T, want ...string) {
	t.Helper()
	f.audit.mu.Lock()
	got := strings.Join(f.audit.events, "|")
	f.audit.mu.Unlock()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("audit lacks %q: %s", w, got)
		}
	}
}

// record takes a two-member consult through a request that both accept,
// until the recording runs.
func (f *recFixture) record(t *testing.T, guests ...string) (*Room, map[string]member, string) {
	t.Helper()
	r, ps := f.consult(t, guests...)
	req := request(t, r, ps["u_doc"])
	for _, id := range guests {
		r.Handle(ps[id].m, consentMsg(req, true))
	}
	joinNode(t, r, ps)
	eventually.True(t, 10*time.Second, "the recording to start", func() bool {
		s, _ := recStateOf(ps["u_doc"].tab)
		return s == RecordingOn
	})
	return r, ps, req
}
