package site

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/auth"
)

var sitePublic = &url.URL{Scheme: "https", Host: "consult.example.org"}

// accessCase is one request by one visitor and what the site must answer.
type accessCase struct {
	name           string
	method, path   string
	session, guest string     // cookies sent; empty for none
	fetchSite      string     // Sec-Fetch-Site a browser sends, if any
	form           url.Values // posted form, if any
	want           int
	location       string   // where a redirect must point
	effects        []string // state changes the request must cause, and no others
}

func (c accessCase) request() *http.Request {
	var body io.Reader
	if c.form != nil {
		body = strings.NewReader(c.form.Encode())
	}
	r := httptest.NewRequest(c.method, c.path, body)
	if c.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.session != "" {
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: c.session})
	}
	if c.guest != "" {
		r.AddCookie(&http.Cookie{Name: guestCookie, Value: c.guest})
	}
	if c.fetchSite != "" {
		r.Header.Set("Sec-Fetch-Site", c.fetchSite)
	}
	return r
}

// runAccess sends each case to a fresh site and checks the status, the
// redirect target and that exactly the expected state changes happened.
func runAccess(t *testing.T, cases []accessCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, sitePublic)
			rec := httptest.NewRecorder()
			w.handler.ServeHTTP(rec, c.request())
			if rec.Code != c.want {
				t.Fatalf("%s %s = %d, want %d\n%s", c.method, c.path, rec.Code, c.want, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != c.location {
				t.Errorf("redirect to %q, want %q", got, c.location)
			}
			if got := w.sideEffects(); !slices.Equal(got, c.effects) {
				t.Errorf("state changes %q, want %q", got, c.effects)
			}
		})
	}
}

// refusedBeforeSignIn are the visitors every signed-in page turns away,
// with where each is sent.
func refusedBeforeSignIn() []accessCase {
	return []accessCase{
		{name: "not signed in", session: "", location: "/signin"},
		{name: "unknown session", session: "forged-session", location: "/signin"},
		{name: "guest of the consult", guest: guestLive, location: "/signin"},
		{name: "code pending", session: sessAliceCode, location: "/signin/code"},
		{name: "second factor not enrolled", session: sessAliceEnrol, location: "/account/totp"},
		{name: "password change pending", session: sessCarol, location: "/account/password"},
	}
}

// withRoute fills in the request and the expected redirect of cases.
func withRoute(method, path string, form url.Values, cases []accessCase) []accessCase {
	out := make([]accessCase, 0, len(cases))
	for _, c := range cases {
		c.name = method + " " + path + " " + c.name
		c.method, c.path, c.form = method, path, form
		if c.want == 0 {
			c.want = http.StatusSeeOther
		}
		out = append(out, c)
	}
	return out
}

func TestConsultPagesAreOnlyForTheirClinician(t *testing.T) {
	title := url.Values{"title": {"Follow-up"}}
	label := url.Values{"label": {"Patient"}}
	routes := []struct {
		method, path string
		form         url.Values
		allowed      accessCase // what Alice, the owner, gets
	}{
		{"GET", "/consults", nil, accessCase{want: 200}},
		{"POST", "/consults", title, accessCase{want: 303, location: "/consults/c-new", effects: []string{"create by u-alice"}}},
		{"GET", "/consults/c-live", nil, accessCase{want: 200}},
		{"GET", "/consults/c-live/record", nil, accessCase{want: 200}},
		{"POST", "/consults/c-live/links", label, accessCase{want: 303, location: "/consults/c-live", effects: []string{"add link to c-live"}}},
		{"POST", "/consults/c-live/links/l1/revoke", nil, accessCase{want: 303, location: "/consults/c-live", effects: []string{"revoke l1 of c-live", "link l1 of c-live closed"}}},
		{"POST", "/consults/c-live/end", nil, accessCase{want: 303, location: "/consults", effects: []string{"c-live by u-alice"}}},
	}
	var cases []accessCase
	for _, r := range routes {
		allowed := r.allowed
		allowed.name, allowed.session = "owner", sessAlice
		cases = append(cases, withRoute(r.method, r.path, r.form, append(refusedBeforeSignIn(),
			accessCase{name: "administrator", session: sessAdmin, want: http.StatusForbidden},
			allowed,
		))...)
		if strings.HasPrefix(r.path, "/consults/c-live") {
			// Another clinician learns nothing, not even that the consult exists.
			cases = append(cases, withRoute(r.method, r.path, r.form, []accessCase{
				{name: "another clinician", session: sessBob, want: http.StatusNotFound},
			})...)
		}
	}
	cases = append(cases,
		accessCase{name: "unknown consult", method: "GET", path: "/consults/c-none", session: sessAlice, want: http.StatusNotFound},
		accessCase{name: "ended consult has no call", method: "GET", path: "/consults/c-ended", session: sessAlice, want: http.StatusGone},
		accessCase{name: "ended consult keeps its record", method: "GET", path: "/consults/c-ended/record", session: sessAlice, want: 200},
		accessCase{name: "ended consult record hidden from another clinician", method: "GET", path: "/consults/c-ended/record", session: sessBob, want: http.StatusNotFound},
		accessCase{name: "ended consult gets no new link", method: "POST", path: "/consults/c-ended/links", form: label, session: sessAlice, want: http.StatusGone},
		accessCase{name: "ended consult cannot end again", method: "POST", path: "/consults/c-ended/end", session: sessAlice, want: http.StatusGone},
		accessCase{name: "another clinician's consult is not listed as the owner's", method: "GET", path: "/consults/c-other", session: sessAlice, want: http.StatusNotFound},
	)
	runAccess(t, cases)
}

func TestAdminPagesAreOnlyForAdministrators(t *testing.T) {
	routes := []struct {
		method, path string
		form         url.Values
		effects      []string
	}{
		{"GET", "/admin/users", nil, nil},
		{"POST", "/admin/users", url.Values{"username": {"new.user"}, "role": {"clinician"}}, []string{"create new.user"}},
		{"POST", "/admin/users/u-alice/disable", nil, []string{fmt.Sprintf("apply %v to u-alice", auth.ActionDisable)}},
		{"POST", "/admin/users/u-alice/enable", nil, []string{fmt.Sprintf("apply %v to u-alice", auth.ActionEnable)}},
		{"GET", "/admin/audit", nil, nil},
		{"POST", "/admin/audit/export", url.Values{"format": {"json"}}, nil},
	}
	var cases []accessCase
	for _, r := range routes {
		cases = append(cases, withRoute(r.method, r.path, r.form, append(refusedBeforeSignIn(),
			accessCase{name: "clinician", session: sessAlice, want: http.StatusForbidden},
			accessCase{name: "administrator", session: sessAdmin, want: 200, effects: r.effects},
		))...)
	}
	cases = append(cases, accessCase{name: "unknown action", method: "POST", path: "/admin/users/u-alice/promote", session: sessAdmin, want: http.StatusNotFound})
	runAccess(t, cases)
}

func TestAccountPagesFollowTheSignInStage(t *testing.T) {
	code := url.Values{"code": {"123456"}}
	cases := []accessCase{
		{name: "home of a clinician is the dashboard", method: "GET", path: "/home", session: sessAlice, want: 303, location: "/consults"},
		{name: "home of an administrator is the account", method: "GET", path: "/home", session: sessAdmin, want: 303, location: "/account"},
		{name: "signed-in visitor skips the sign-in form", method: "GET", path: "/signin", session: sessAlice, want: 303, location: "/home"},
		{name: "sign-in form for visitors", method: "GET", path: "/signin", want: 200},
		{name: "account page", method: "GET", path: "/account", session: sessAlice, want: 200},
		{name: "enrollment when required", method: "GET", path: "/account/totp", session: sessAliceEnrol, want: 200},
		{name: "enrollment when signed in", method: "GET", path: "/account/totp", session: sessAlice, want: 200},
		{name: "forced password change", method: "GET", path: "/account/password", session: sessCarol, want: 200},
		{name: "password change when signed in", method: "GET", path: "/account/password", session: sessAlice, want: 200},
		{name: "code form while the code is pending", method: "GET", path: "/signin/code", session: sessAliceCode, want: 200},
		{name: "code form after sign-in goes home", method: "GET", path: "/signin/code", session: sessAlice, want: 303, location: "/home"},
		{name: "code accepted while pending", method: "POST", path: "/signin/code", form: code, session: sessAliceCode, want: 303, location: "/home", effects: []string{"verify u-alice"}},
		{name: "code refused after sign-in", method: "POST", path: "/signin/code", form: code, session: sessAlice, want: 303, location: "/home"},
		{name: "code refused to a visitor", method: "POST", path: "/signin/code", form: code, want: 303, location: "/signin"},
		{name: "code refused while enrollment is required", method: "POST", path: "/signin/code", form: code, session: sessAliceEnrol, want: 303, location: "/account/totp"},
		{name: "sign out everywhere", method: "POST", path: "/signout/everywhere", session: sessAlice, want: 303, location: "/signin", effects: []string{"signout everywhere u-alice"}},
		{name: "sign out", method: "POST", path: "/signout", session: sessAlice, want: 303, location: "/signin", effects: []string{"signout"}},
	}
	for _, path := range []string{"/home", "/account", "/signout/everywhere"} {
		method := "GET"
		if path == "/signout/everywhere" {
			method = "POST"
		}
		cases = append(cases, withRoute(method, path, nil, refusedBeforeSignIn())...)
	}
	cases = append(cases, withRoute("GET", "/account/totp", nil, []accessCase{
		{name: "not signed in", location: "/signin"},
		{name: "code pending", session: sessAliceCode, location: "/signin/code"},
		{name: "password change pending", session: sessCarol, location: "/account/password"},
	})...)
	cases = append(cases, withRoute("GET", "/account/password", nil, []accessCase{
		{name: "not signed in", location: "/signin"},
		{name: "code pending", session: sessAliceCode, location: "/signin/code"},
		{name: "second factor not enrolled", session: sessAliceEnrol, location: "/account/totp"},
	})...)
	cases = append(cases, withRoute("GET", "/signin/code", nil, []accessCase{
		{name: "not signed in", location: "/signin"},
		{name: "second factor not enrolled", session: sessAliceEnrol, location: "/account/totp"},
	})...)
	runAccess(t, cases)
}

func TestGuestPagesNeedAValidLink(t *testing.T) {
	name := url.Values{"name": {"Pat"}}
	runAccess(t, []accessCase{
		{name: "call without a guest session", method: "GET", path: "/call", want: http.StatusUnauthorized},
		{name: "call with a clinician session only", method: "GET", path: "/call", session: sessAlice, want: http.StatusUnauthorized},
		{name: "call with an unknown guest session", method: "GET", path: "/call", guest: guestBogus, want: http.StatusGone},
		{name: "call of an ended consult", method: "GET", path: "/call", guest: guestEnded, want: http.StatusGone},
		{name: "call of a guest", method: "GET", path: "/call", guest: guestLive, want: 200},
		{name: "join page of a revoked link", method: "GET", path: "/j/" + linkRevoked, want: http.StatusGone},
		{name: "join page", method: "GET", path: "/j/" + linkLive, want: 200},
		{name: "join with a revoked link", method: "POST", path: "/j/" + linkRevoked, form: name, want: http.StatusGone},
		{name: "join without a name", method: "POST", path: "/j/" + linkLive, form: url.Values{}, want: http.StatusUnprocessableEntity},
		{name: "join", method: "POST", path: "/j/" + linkLive, form: name, want: 303, location: "/call", effects: []string{"join c-live"}},
		{name: "connectivity check of a revoked link", method: "GET", path: "/j/" + linkRevoked + "/connectivity", want: http.StatusGone},
		{name: "connectivity check", method: "GET", path: "/j/" + linkLive + "/connectivity", want: 200},
	})
}

func TestWebSocketAdmitsOnlyParticipantsOfTheConsult(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	public := &url.URL{Scheme: "http", Host: srv.Listener.Addr().String()}
	w := newWorld(t, public)
	srv.Config.Handler = w.handler
	srv.Start()
	defer srv.Close()
	cases := []struct {
		name           string
		consult        string
		session, guest string
		origin         string
		joined         string // what the room saw; empty when refused
	}{
		{name: "not signed in", consult: consultLive},
		{name: "unknown guest session", consult: consultLive, guest: guestBogus},
		{name: "guest of another consult", consult: consultLive, guest: guestOther},
		{name: "guest of an ended consult", consult: consultEnded, guest: guestEnded},
		{name: "another clinician", consult: consultLive, session: sessBob},
		{name: "administrator", consult: consultLive, session: sessAdmin},
		{name: "owner with the code pending", consult: consultLive, session: sessAliceCode},
		{name: "owner of an ended consult", consult: consultEnded, session: sessAlice},
		{name: "unknown consult", consult: "c-none", session: sessAlice},
		{name: "owner from another site", consult: consultLive, session: sessAlice, origin: "https://evil.example"},
		{name: "owner", consult: consultLive, session: sessAlice, joined: "c-live clinician u-alice host=true"},
		{name: "admitted guest", consult: consultLive, guest: guestLive, joined: "c-live guest g-live host=false"},
		{name: "guest in the lobby", consult: consultLive, guest: guestLobby, joined: "c-live guest g-lobby host=false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(w.signaling.made())
			h := http.Header{}
			if c.origin == "" {
				c.origin = public.String()
			}
			h.Set("Origin", c.origin)
			var cookies []string
			if c.session != "" {
				cookies = append(cookies, sessionCookie+"="+c.session)
			}
			if c.guest != "" {
				cookies = append(cookies, guestCookie+"="+c.guest)
			}
			if cookies != nil {
				h.Set("Cookie", strings.Join(cookies, "; "))
			}
			ws, resp, err := websocket.DefaultDialer.Dial("ws://"+public.Host+"/ws/consults/"+c.consult, h)
			if c.joined == "" {
				if err == nil {
					ws.Close()
					t.Fatal("connection accepted")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("refusal = %v, %v; want 403", resp, err)
				}
				if got := w.signaling.made(); len(got) != before {
					t.Fatalf("room saw %q", got[before:])
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			defer ws.Close()
			if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), "welcome") {
				t.Fatalf("first message %q, %v", msg, err)
			}
			if got := w.signaling.made(); len(got) != before+1 || got[before] != c.joined {
				t.Fatalf("room saw %q, want %q", got[before:], c.joined)
			}
		})
	}
}

// upload posts one small PDF as a browser's form would.
func upload() (body *bytes.Buffer, contentType string) {
	body = &bytes.Buffer{}
	mw := multipart.NewWriter(body)
	part, _ := mw.CreateFormFile("file", "scan.pdf")
	_, _ = part.Write([]byte("%PDF-1.7\n"))
	_ = mw.Close()
	return body, mw.FormDataContentType()
}

func TestDocumentsAreOnlyForMembersOfTheirConsult(t *testing.T) {
	cases := []struct {
		name           string
		method, path   string
		session, guest string
		want           int
		shared         []string
	}{
		// Sharing.
		{"share while not signed in", "POST", "/consults/c-live/files", "", "", 403, nil},
		{"share as guest of another consult", "POST", "/consults/c-live/files", "", guestOther, 403, nil},
		{"share as guest in the lobby", "POST", "/consults/c-live/files", "", guestLobby, 403, nil},
		{"share as another clinician", "POST", "/consults/c-live/files", sessBob, "", 403, nil},
		{"share as administrator", "POST", "/consults/c-live/files", sessAdmin, "", 403, nil},
		{"share with the code pending", "POST", "/consults/c-live/files", sessAliceCode, "", 403, nil},
		{"share in an ended consult as owner", "POST", "/consults/c-ended/files", sessAlice, "", 403, nil},
		{"share in an ended consult as guest", "POST", "/consults/c-ended/files", "", guestEnded, 403, nil},
		{"share as owner", "POST", "/consults/c-live/files", sessAlice, "", 201, []string{"c-live by u-alice"}},
		{"share as admitted guest", "POST", "/consults/c-live/files", "", guestLive, 201, []string{"c-live by g-live"}},
		// Reading.
		{"read while not signed in", "GET", "/consults/c-live/files/d-live", "", "", 403, nil},
		{"read as guest of another consult", "GET", "/consults/c-live/files/d-live", "", guestOther, 403, nil},
		{"read as guest in the lobby", "GET", "/consults/c-live/files/d-live", "", guestLobby, 403, nil},
		{"read as another clinician", "GET", "/consults/c-live/files/d-live", sessBob, "", 403, nil},
		{"read as administrator", "GET", "/consults/c-live/files/d-live", sessAdmin, "", 403, nil},
		{"read with the code pending", "GET", "/consults/c-live/files/d-live", sessAliceCode, "", 403, nil},
		{"read as guest after the consult ended", "GET", "/consults/c-ended/files/d-ended", "", guestEnded, 403, nil},
		{"read another consult's document as owner", "GET", "/consults/c-live/files/d-other", sessAlice, "", 404, nil},
		{"read another consult's document as guest", "GET", "/consults/c-live/files/d-other", "", guestLive, 404, nil},
		{"read another consult's document through one's own", "GET", "/consults/c-other/files/d-live", sessBob, "", 404, nil},
		{"read as owner", "GET", "/consults/c-live/files/d-live", sessAlice, "", 200, nil},
		{"read as owner after the consult ended", "GET", "/consults/c-ended/files/d-ended", sessAlice, "", 200, nil},
		{"read as admitted guest", "GET", "/consults/c-live/files/d-live", "", guestLive, 200, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, sitePublic)
			var r *http.Request
			if c.method == "POST" {
				body, ctype := upload()
				r = httptest.NewRequest(c.method, c.path, body)
				r.Header.Set("Content-Type", ctype)
			} else {
				r = httptest.NewRequest(c.method, c.path, nil)
			}
			if c.session != "" {
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: c.session})
			}
			if c.guest != "" {
				r.AddCookie(&http.Cookie{Name: guestCookie, Value: c.guest})
			}
			rec := httptest.NewRecorder()
			w.handler.ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Fatalf("%s %s = %d, want %d\n%s", c.method, c.path, rec.Code, c.want, rec.Body)
			}
			if got := w.docs.made(); !slices.Equal(got, c.shared) {
				t.Errorf("documents shared %q, want %q", got, c.shared)
			}
			served := strings.HasPrefix(rec.Body.String(), "%PDF")
			if served != (c.method == "GET" && c.want == 200) {
				t.Errorf("document content served = %v", served)
			}
			if served && !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
				t.Errorf("document served inline: %q", rec.Header().Get("Content-Disposition"))
			}
		})
	}
}

func TestPasswordLinksWorkOnlyForTheirPurpose(t *testing.T) {
	password := url.Values{"password": {"a long new passphrase"}, "confirm": {"a long new passphrase"}}
	admin := url.Values{"username": {"chief"}, "password": {"a long new passphrase"}, "confirm": {"a long new passphrase"}}
	runAccess(t, []accessCase{
		{name: "reset form of an unknown link", method: "GET", path: "/reset/forged", want: http.StatusGone},
		{name: "reset form of an activation link", method: "GET", path: "/reset/" + activateLink, want: http.StatusGone},
		{name: "reset form", method: "GET", path: "/reset/" + resetLink, want: 200},
		{name: "reset with an unknown link", method: "POST", path: "/reset/forged", form: password, want: http.StatusGone},
		{name: "reset with an activation link", method: "POST", path: "/reset/" + activateLink, form: password, want: http.StatusGone},
		{name: "reset", method: "POST", path: "/reset/" + resetLink, form: password, want: 200, effects: []string{"password set with reset link"}},
		{name: "activation form of a reset link", method: "GET", path: "/activate/" + resetLink, want: http.StatusGone},
		{name: "activation form", method: "GET", path: "/activate/" + activateLink, want: 200},
		{name: "activation with a reset link", method: "POST", path: "/activate/" + resetLink, form: password, want: http.StatusGone},
		{name: "activation", method: "POST", path: "/activate/" + activateLink, form: password, want: 200, effects: []string{"password set with activate link"}},
		{name: "setup form of an unknown link", method: "GET", path: "/setup/forged", want: http.StatusGone},
		{name: "setup form", method: "GET", path: "/setup/" + setupLink, want: 200},
		{name: "setup with an unknown link", method: "POST", path: "/setup/forged", form: admin, want: http.StatusGone},
		{name: "setup", method: "POST", path: "/setup/" + setupLink, form: admin, want: 200, effects: []string{"first administrator chief"}},
	})
}

// TestCrossSiteRequestsChangeNothing: a form another site makes a signed-in
// browser post is refused before any handler runs; the same post from the
// site itself goes through.
func TestCrossSiteRequestsChangeNothing(t *testing.T) {
	var cases []accessCase
	for _, r := range []struct {
		method, path string
		session      string
		form         url.Values
		location     string
		effects      []string
	}{
		{"POST", "/consults/c-live/end", sessAlice, nil, "/consults", []string{"c-live by u-alice"}},
		{"POST", "/consults/c-live/links", sessAlice, url.Values{"label": {"Patient"}}, "/consults/c-live", []string{"add link to c-live"}},
		{"POST", "/admin/users/u-alice/disable", sessAdmin, nil, "", []string{fmt.Sprintf("apply %v to u-alice", auth.ActionDisable)}},
		{"POST", "/admin/users/u-alice/enable", sessAdmin, nil, "", []string{fmt.Sprintf("apply %v to u-alice", auth.ActionEnable)}},
		{"POST", "/signout/everywhere", sessAlice, nil, "/signin", []string{"signout everywhere u-alice"}},
	} {
		allowed := http.StatusSeeOther
		if r.location == "" {
			allowed = 200
		}
		cases = append(cases,
			accessCase{name: r.path + " from another site", method: r.method, path: r.path, session: r.session, form: r.form, fetchSite: "cross-site", want: http.StatusForbidden},
			accessCase{name: r.path + " from the site", method: r.method, path: r.path, session: r.session, form: r.form, fetchSite: "same-origin", want: allowed, location: r.location, effects: r.effects},
		)
	}
	runAccess(t, cases)
}
