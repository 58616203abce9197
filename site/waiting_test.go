package site

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLobbies holds waiting counts a test changes.
type fakeLobbies struct {
	mu     sync.Mutex
	counts map[string]int
}

func (f *fakeLobbies) Waiting() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

func (f *fakeLobbies) set(id string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n == 0 {
		delete(f.counts, id)
		return
	}
	f.counts[id] = n
}

func TestWaitingStreamIsOnlyForSignedInClinicians(t *testing.T) {
	cases := withRoute("GET", "/api/waiting", nil, append(refusedBeforeSignIn(),
		accessCase{name: "administrator", session: sessAdmin, want: http.StatusForbidden},
	))
	runAccess(t, cases)
}

// TestWaitingStreamCarriesOnlyTheClinicansOwnCounts: the stream sends the
// counts of the clinician's own consults at once and again when they
// change; another clinician's consult never appears, and nothing but
// counts is sent.
func TestWaitingStreamCarriesOnlyTheClinicansOwnCounts(t *testing.T) {
	w := newWorld(t, sitePublic)
	lobbies := &fakeLobbies{counts: map[string]int{consultLive: 1, consultOther: 3}}
	w.site.opt.Lobbies = lobbies
	srv := httptest.NewServer(w.handler)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/waiting", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sessAlice})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /api/waiting = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		t.Helper()
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				return data
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return ""
	}
	check := func(data string, want map[string]int, total int) {
		t.Helper()
		var ev struct {
			Consults map[string]int `json:"consults"`
			Total    int            `json:"total"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if len(ev.Consults) != len(want) || ev.Total != total {
			t.Fatalf("event %s, want %v total %d", data, want, total)
		}
		for k, v := range want {
			if ev.Consults[k] != v {
				t.Fatalf("event %s, want %v", data, want)
			}
		}
	}
	check(next(), map[string]int{consultLive: 1}, 1)
	lobbies.set(consultLive, 2)
	check(next(), map[string]int{consultLive: 2}, 2)
	lobbies.set(consultLive, 0)
	check(next(), map[string]int{}, 0)
}
