package signaling

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

func TestRecordingStartsOnTheNodeWhenEveryMemberAgreesAndReturnsWhenStopped(t *testing.T) {
	f := newRecFixture(t)
	r, ps := f.consult(t, "g_pat")
	host, pat := ps["u_doc"], ps["g_pat"]
	req := request(t, r, host)
	if s, _ := recStateOf(host.tab); s != RecordingAsking {
		t.Fatalf("after the request the state is %q", s)
	}
	ask := pat.tab.last("record-ask")
	if ask == nil || ask["request"] != req {
		t.Fatalf("the patient was not asked: %v", pat.tab.types())
	}
	if host.tab.last("record-ask") != nil {
		t.Fatal("the host who asked was asked too")
	}
	if routeTo(host.tab) != nil || len(f.rec.started()) != 0 {
		t.Fatal("the consult moved or recorded before the patient answered")
	}

	r.Handle(pat.m, consentMsg(req, true))
	for name, p := range ps {
		if routeTo(p.tab) != RouteSFU {
			t.Fatalf("%s was not moved to the media node: %v", name, p.tab.last("route"))
		}
		if s, _ := recStateOf(p.tab); s != RecordingStarting {
			t.Fatalf("%s was told %q, want starting", name, s)
		}
	}
	if len(f.rec.started()) != 0 {
		t.Fatal("the recorder started before the members reached the node")
	}
	joinNode(t, r, ps)
	eventually.True(t, 10*time.Second, "the recording to start", func() bool {
		for _, p := range ps {
			if s, _ := recStateOf(p.tab); s != RecordingOn {
				return false
			}
		}
		return true
	})
	starts := f.rec.started()
	got := starts[0]
	if got.ConsultID != "c_1" || got.RoomID != "c_1" || got.RequestedBy != "u_doc" || got.Node == nil || len(got.Consents) != 2 || got.Request != req {
		t.Fatalf("start request %+v", got)
	}
	for _, c := range got.Consents {
		wantAccount := map[string]string{"u_doc": "u_doc", "g_pat": ""}[c.MemberID]
		if c.AccountID != wantAccount || c.Name != "Name of "+c.MemberID || c.At.IsZero() {
			t.Errorf("consent %+v", c)
		}
	}

	host.tab.take()
	pat.tab.take()
	r.Handle(host.m, msg("record-stop"))
	active := f.rec.active(t)
	eventually.True(t, 10*time.Second, "the recording to stop", func() bool {
		s, reason := recStateOf(pat.tab)
		return s == RecordingOff && reason == StopRequested
	})
	if stops := active.stoppedWith(); len(stops) != 1 || stops[0] != StopRequested {
		t.Fatalf("Active.Stop calls: %v", stops)
	}
	for name, p := range ps {
		if routeTo(p.tab) != RouteP2P {
			t.Errorf("%s was not moved back to peer to peer: %v", name, p.tab.last("route"))
		}
	}
	f.auditHas(t, "recording.requested u_doc", "recording.consented u_doc", "recording.consented g_pat")
	r.Handle(host.m, msg("record-stop"))
	if code := errCode(host.tab); code != ErrNotRecording.Code {
		t.Fatalf("stopping nothing: %q", code)
	}
}

func TestOneDeclineKeepsTheRecordingFromStartingAndNamesNobody(t *testing.T) {
	f := newRecFixture(t)
	r, ps := f.consult(t, "g_pat", "g_fam")
	req := request(t, r, ps["u_doc"])
	r.Handle(ps["g_pat"].m, consentMsg(req, true))
	r.Handle(ps["g_fam"].m, consentMsg(req, false))
	for name, p := range ps {
		m := p.tab.last("recording")
		if m == nil || m["state"] != RecordingOff || m["reason"] != StopDeclined {
			t.Fatalf("%s was told %v", name, m)
		}
		for _, got := range p.tab.take() {
			if got["type"] == "recording" && (got["member"] != nil || strings.Contains(string(encode(got)), "g_fam")) {
				t.Errorf("%s learnt who declined: %v", name, got)
			}
		}
	}
	joinNode(t, r, ps)
	f.advance(r, recordNodeWait+time.Second)
	if n := len(f.rec.started()); n != 0 {
		t.Fatalf("%d recordings started after a decline", n)
	}
	f.auditHas(t, "recording.declined g_fam", "recording.consented g_pat")

	// The decline ended the request: answering it again is refused.
	r.Handle(ps["g_pat"].m, consentMsg(req, true))
	if code := errCode(ps["g_pat"].tab); code != ErrNotAsked.Code {
		t.Fatalf("an answer to an ended request: %q", code)
	}
}

func TestWithdrawnConsentStopsTheRecording(t *testing.T) {
	f := newRecFixture(t)
	r, ps, req := f.record(t, "g_pat")
	r.Handle(ps["g_pat"].m, consentMsg(req, false))
	eventually.True(t, 10*time.Second, "the recording to stop", func() bool {
		s, reason := recStateOf(ps["u_doc"].tab)
		return s == RecordingOff && reason == StopWithdrawn
	})
	if stops := f.rec.active(t).stoppedWith(); len(stops) != 1 || stops[0] != StopWithdrawn {
		t.Fatalf("Active.Stop calls: %v", stops)
	}
	f.auditHas(t, "recording.declined g_pat")
}

func TestLateJoinerIsAskedBeforeAdmissionIntoARecordedConsult(t *testing.T) {
	f := newRecFixture(t)
	r, ps, req := f.record(t, "g_pat")
	host := ps["u_doc"]

	_, late, ltab := f.join(t, "g_late", false)
	if ask := ltab.last("record-ask"); ask == nil || ask["request"] != req {
		t.Fatalf("the late joiner was not asked in the lobby: %v", ltab.types())
	}
	if w := host.tab.last("lobby")["waiting"].([]any); len(w) != 1 || w[0].(map[string]any)["recording"] != "asked" {
		t.Fatalf("the host's lobby list: %v", w)
	}
	r.Handle(host.m, msg("admit", "member", "g_late"))
	if code := errCode(host.tab); code != ErrConsentRequired.Code {
		t.Fatalf("admitting a member who has not agreed: %q", code)
	}
	if ltab.last("admitted") != nil {
		t.Fatal("the late joiner was admitted without agreeing")
	}

	// Another declines: it stays in the lobby and the recording goes on.
	_, _, dtab := f.join(t, "g_no", false)
	r.Handle(r.members["g_no"], consentMsg(req, false))
	if code := errCode(dtab); code != "" {
		t.Fatalf("a decline from the lobby: %q", code)
	}
	r.Handle(host.m, msg("admit", "member", "g_no"))
	if code := errCode(host.tab); code != ErrConsentRequired.Code || dtab.last("admitted") != nil {
		t.Fatalf("a member who declined was admitted: %q", code)
	}
	if s, _ := recStateOf(ps["g_pat"].tab); s != RecordingOn {
		t.Fatalf("a decline in the lobby changed the recording: %q", s)
	}

	host.tab.take()
	r.Handle(late, consentMsg(req, true))
	if w := host.tab.last("lobby")["waiting"].([]any); w[0].(map[string]any)["recording"] != "agreed" {
		t.Fatalf("the host's lobby list after agreeing: %v", w)
	}
	r.Handle(host.m, msg("admit", "member", "g_late"))
	if code := errCode(host.tab); code != "" {
		t.Fatalf("admitting a member who agreed: %q", code)
	}
	if s, _ := recStateOf(ltab); s != RecordingOn || ltab.last("admitted") == nil {
		t.Fatalf("the admitted late joiner does not see the recording: %q", s)
	}
	f.auditHas(t, "recording.consented g_late", "recording.declined g_no")

	// Once it stops, the member who declined may come in.
	r.Handle(host.m, msg("record-stop"))
	eventually.True(t, 10*time.Second, "the recording to stop", func() bool {
		s, _ := recStateOf(dtab)
		return s == RecordingOff
	})
	r.Handle(host.m, msg("admit", "member", "g_no"))
	if code := errCode(host.tab); code != "" || dtab.last("admitted") == nil {
		t.Fatalf("admitting after the recording stopped: %q", code)
	}
}

func TestMemberAdmittedDuringARequestIsAskedToo(t *testing.T) {
	f := newRecFixture(t)
	r, ps := f.consult(t, "g_pat")
	req := request(t, r, ps["u_doc"])
	_, _, itab := f.join(t, "g_int", false)
	if itab.last("record-ask") != nil {
		t.Fatal("a lobby guest was asked before anyone records")
	}
	r.Handle(ps["u_doc"].m, msg("admit", "member", "g_int"))
	r.Handle(ps["g_pat"].m, consentMsg(req, true))
	if s, _ := recStateOf(ps["g_pat"].tab); s != RecordingAsking {
		t.Fatalf("the request went on without the new member's answer: %q", s)
	}
	if ask := itab.last("record-ask"); ask == nil || ask["request"] != req {
		t.Fatalf("the new member was not asked: %v", itab.types())
	}
	r.Handle(r.members["g_int"], consentMsg(req, true))
	if s, _ := recStateOf(ps["g_pat"].tab); s != RecordingStarting {
		t.Fatalf("after every answer: %q", s)
	}
}

func TestNodeFailureTellsEveryoneTheRecordingStopped(t *testing.T) {
	f := newRecFixture(t)
	r, ps, _ := f.record(t, "g_pat")
	f.rec.active(t).fail()
	eventually.True(t, 10*time.Second, "everyone to hear the recording stopped", func() bool {
		for _, p := range ps {
			if s, reason := recStateOf(p.tab); s != RecordingOff || reason != StopFailed {
				return false
			}
		}
		return true
	})
	if routeTo(ps["g_pat"].tab) != RouteP2P {
		t.Fatal("the consult did not move back to peer to peer")
	}
	// The host may ask again.
	request(t, r, ps["u_doc"])
}

func TestRecorderThatFailsToStartTellsEveryone(t *testing.T) {
	f := newRecFixture(t)
	f.rec.fail = errors.New("object store down")
	r, ps := f.consult(t, "g_pat")
	req := request(t, r, ps["u_doc"])
	r.Handle(ps["g_pat"].m, consentMsg(req, true))
	joinNode(t, r, ps)
	eventually.True(t, 10*time.Second, "the failure to reach everyone", func() bool {
		s, reason := recStateOf(ps["g_pat"].tab)
		return s == RecordingOff && reason == StopFailed
	})
}

func TestEndingTheConsultStopsTheRecording(t *testing.T) {
	f := newRecFixture(t)
	_, _, _ = f.record(t, "g_pat")
	if err := f.hub.EndConsult(context.Background(), "c_1", "u_doc"); err != nil {
		t.Fatal(err)
	}
	active := f.rec.active(t)
	eventually.True(t, 10*time.Second, "Active.Stop", func() bool {
		s := active.stoppedWith()
		return len(s) == 1 && s[0] == StopEnded
	})
}

func TestHostBackWithoutItsPlaceStopsTheRecording(t *testing.T) {
	f := newRecFixture(t)
	r, ps, _ := f.record(t, "g_pat")
	f.hub.Disconnected(r, ps["u_doc"].m, ps["u_doc"].tab)
	f.advance(r, 0)
	f.advance(r, 2*time.Minute)
	f.join(t, "u_doc", true)
	eventually.True(t, 10*time.Second, "the recording to stop", func() bool {
		s, reason := recStateOf(ps["g_pat"].tab)
		return s == RecordingOff && reason == StopJoined
	})
}

func TestRecordingRequestsAreChecked(t *testing.T) {
	f := newRecFixture(t)
	r, ps := f.consult(t, "g_pat", "g_fam")
	host, pat := ps["u_doc"], ps["g_pat"]
	_, lobby, ltab := f.join(t, "g_lobby", false)

	type check struct {
		name string
		from member
		raw  []byte
		want string
	}
	run := func(tests []check) {
		for _, tt := range tests {
			tt.from.tab.take()
			r.Handle(tt.from.m, tt.raw)
			if code := errCode(tt.from.tab); code != tt.want {
				t.Errorf("%s: error %q, want %q", tt.name, code, tt.want)
			}
		}
	}
	run([]check{
		{"a guest cannot ask to record", pat, msg("record-start"), ErrForbidden.Code},
		{"a guest cannot stop", pat, msg("record-stop"), ErrForbidden.Code},
		{"a lobby guest cannot ask", member{lobby, ltab}, msg("record-start"), ErrLobby.Code},
		{"nothing to stop", host, msg("record-stop"), ErrNotRecording.Code},
		{"an answer to nothing", pat, consentMsg("rec_x", true), ErrNotAsked.Code},
	})
	req := request(t, r, host)
	run([]check{
		{"a second request", host, msg("record-start"), ErrRecordingBusy.Code},
		{"a guest cannot stop a request", pat, msg("record-stop"), ErrForbidden.Code},
		{"an answer for another member", pat, msg("record-consent", "request", req, "consent", true, "member", "g_fam"), ErrMalformed.Code},
		{"an answer without consent", pat, msg("record-consent", "request", req), ErrBadField.Code},
		{"an answer without request", pat, msg("record-consent", "consent", true), ErrBadField.Code},
		{"a request id too long", pat, consentMsg(strings.Repeat("r", maxRequestIDBytes+1), true), ErrBadField.Code},
		{"consent not a boolean", pat, msg("record-consent", "request", req, "consent", "yes"), ErrMalformed.Code},
		{"an answer to another request", pat, consentMsg("rec_other", true), ErrNotAsked.Code},
		{"a lobby guest is not asked before the recording starts", member{lobby, ltab}, consentMsg(req, true), ErrNotAsked.Code},
	})
	// None of the refused answers counted, for the sender or another.
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range []string{"g_pat", "g_fam", "g_lobby"} {
		if r.members[id].consent.agreed {
			t.Errorf("%s counts as agreed", id)
		}
	}
	if r.rec == nil || r.rec.phase != RecordingAsking {
		t.Fatal("the request did not survive the refused answers")
	}
}

func TestRecordingIsOfferedOnlyWithARecorder(t *testing.T) {
	f := newFixture()
	f.hub.deps.Media = newSFU(t, 0)
	r, hm, htab := f.join(t, "u_doc", true)
	if w := htab.last("welcome"); w["recording"] != nil {
		t.Fatalf("welcome offers recording without a recorder: %v", w)
	}
	r.Handle(hm, msg("record-start"))
	if code := errCode(htab); code != ErrRecordingUnavailable.Code {
		t.Fatalf("record-start without a recorder: %q", code)
	}

	rf := newRecFixture(t)
	_, _, tb := rf.join(t, "u_doc", true)
	w := tb.last("welcome")
	offer, ok := w["recording"].(map[string]any)
	if !ok || offer["retentionSeconds"] != float64(90*24*3600) || len(offer["viewers"].([]any)) != 1 {
		t.Fatalf("welcome's recording offer: %v", w)
	}
}

func TestUnansweredRequestEnds(t *testing.T) {
	f := newRecFixture(t)
	r, ps := f.consult(t, "g_pat")
	request(t, r, ps["u_doc"])
	f.advance(r, recordAskFor-time.Second)
	if s, _ := recStateOf(ps["g_pat"].tab); s != RecordingAsking {
		t.Fatalf("the request ended early: %q", s)
	}
	f.advance(r, time.Second)
	if s, reason := recStateOf(ps["g_pat"].tab); s != RecordingOff || reason != StopUnanswered {
		t.Fatalf("an unanswered request: %q %q", s, reason)
	}
}

// A starting recording waits for the members' node sessions, then starts
// with those there, or gives up when nobody reached the node.
func TestStartingRecordingWaitsForTheNodeThenGoesOnWithThoseThere(t *testing.T) {
	for _, tt := range []struct {
		name   string
		onNode []string
		want   string
	}{
		{"one member on the node", []string{"u_doc"}, RecordingOn},
		{"nobody on the node", nil, RecordingOff},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRecFixture(t)
			r, ps := f.consult(t, "g_pat")
			req := request(t, r, ps["u_doc"])
			r.Handle(ps["g_pat"].m, consentMsg(req, true))
			there := map[string]member{}
			for _, id := range tt.onNode {
				there[id] = ps[id]
			}
			joinNode(t, r, there)
			f.advance(r, recordNodeWait-time.Second)
			if s, _ := recStateOf(ps["g_pat"].tab); s != RecordingStarting {
				t.Fatalf("before the wait is over: %q", s)
			}
			// The joins are asynchronous: wait for them before the clock
			// moves past the wait.
			eventually.True(t, 10*time.Second, "the node sessions", func() bool {
				r.mu.Lock()
				defer r.mu.Unlock()
				for _, id := range tt.onNode {
					if !r.members[id].onNode {
						return false
					}
				}
				return true
			})
			f.advance(r, time.Second)
			eventually.True(t, 10*time.Second, "the state "+tt.want, func() bool {
				s, _ := recStateOf(ps["g_pat"].tab)
				return s == tt.want
			})
			if tt.want == RecordingOff {
				if _, reason := recStateOf(ps["g_pat"].tab); reason != StopNoMedia {
					t.Fatalf("reason %q", reason)
				}
				if routeTo(ps["g_pat"].tab) != RouteP2P {
					t.Fatal("the consult stayed on the node")
				}
			}
		})
	}
}
