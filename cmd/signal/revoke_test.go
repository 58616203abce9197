package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// liveServer is a development server with an administrator, for tests of
// what reaches open call pages.
type liveServer struct {
	*devServer
	dir   string
	admin *http.Client
}

func startLive(t *testing.T) *liveServer {
	t.Helper()
	dir := t.TempDir()
	d := startDev(t, dir)
	t.Cleanup(func() { d.stop() })
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	return &liveServer{devServer: d, dir: dir, admin: signInHTTP(t, d, "chief.admin", "a long admin passphrase")}
}

// clinician creates and signs in a clinician and returns the signed-in
// client and the account's id.
func (l *liveServer) clinician(t *testing.T, name string) (*http.Client, string) {
	t.Helper()
	createClinician(t, l.devServer, l.dir, l.admin, name, "a long clinician passphrase")
	c := signInHTTP(t, l.devServer, name, "a long clinician passphrase")
	resp, body := get(t, l.admin, l.public+"/admin/users")
	m := regexp.MustCompile(`(?s)<th scope="row">` + regexp.QuoteMeta(name) + `</th>.*?/admin/users/([^/"]+)/force-password`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("no account %s in the users list (%d)", name, resp.StatusCode)
	}
	return c, m[1]
}

// liveConsult is a consult started by a clinician, with its patient link.
type liveConsult struct {
	id, link, linkID string
}

func (l *liveServer) startConsult(t *testing.T, doc *http.Client) liveConsult {
	t.Helper()
	resp, body := postForm(t, doc, l.public+"/consults", url.Values{"title": {""}})
	id := strings.TrimPrefix(resp.Request.URL.Path, "/consults/")
	m := regexp.MustCompile(`value="(https://[^"]+/j/[^"]+)"[^>]*id="link-([^"]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || id == "" || m == nil {
		t.Fatalf("start consult = %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return liveConsult{id: id, link: m[1], linkID: m[2]}
}

// guest joins through the link from a browser of its own (a cookie jar:
// its device cookie and guest session).
func (l *liveServer) guest(t *testing.T, link string, jar http.CookieJar) *http.Client {
	t.Helper()
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	c := *l.client
	c.Jar, c.CheckRedirect = jar, nil
	if resp, body := postForm(t, &c, link, url.Values{"name": {"Pat Example"}}); resp.StatusCode != 200 || resp.Request.URL.Path != "/call" {
		t.Fatalf("guest join = %d at %s: %s", resp.StatusCode, resp.Request.URL, body)
	}
	return &c
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// dialCall opens the call page's WebSocket with the client's cookies; it
// returns the HTTP status when the server refuses.
func (l *liveServer) dialCall(t *testing.T, c *http.Client, consultID string) (*websocket.Conn, int) {
	t.Helper()
	dialer := websocket.Dialer{TLSClientConfig: l.client.Transport.(*http.Transport).TLSClientConfig.Clone(), Jar: c.Jar, HandshakeTimeout: 10 * time.Second}
	dialer.TLSClientConfig.MinVersion = tls.VersionTLS12
	ws, resp, err := dialer.Dial("wss://"+strings.TrimPrefix(l.public, "https://")+"/ws/consults/"+consultID, http.Header{"Origin": {l.public}})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

// next reads messages until one of type want, failing on another closing
// message or a closed connection.
func next(t *testing.T, ws *websocket.Conn, want string) map[string]any {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if m["type"] == want {
			return m
		}
	}
}

// closedAfter reads the closing message of type code, then expects the
// server to close the connection.
func closedAfter(t *testing.T, ws *websocket.Conn, code string) {
	t.Helper()
	next(t, ws, code)
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("the server kept the connection open after closing it")
			}
			return
		}
	}
}

// inCall opens the clinician's and a guest's call pages and returns them
// with the guest waiting in the lobby.
func (l *liveServer) inCall(t *testing.T, doc, pat *http.Client, consultID string) (docWS, patWS *websocket.Conn, guestID string) {
	t.Helper()
	docWS, code := l.dialCall(t, doc, consultID)
	if docWS == nil {
		t.Fatalf("clinician's call page refused: %d", code)
	}
	next(t, docWS, "admitted")
	patWS, code = l.dialCall(t, pat, consultID)
	if patWS == nil {
		t.Fatalf("guest's call page refused: %d", code)
	}
	welcome := next(t, patWS, "welcome")
	return docWS, patWS, welcome["member"].(string)
}

// An administrator's action on a clinician closes the clinician's open call
// page: it is told "revoked", closed, and cannot reconnect, and an admit
// it still sends lets nobody in.
func TestAdminActionClosesTheClinicianCallPage(t *testing.T) {
	l := startLive(t)
	for i, action := range []string{"disable", "revoke-sessions", "force-password"} {
		t.Run(action, func(t *testing.T) {
			doc, userID := l.clinician(t, fmt.Sprintf("dr.revoked%d", i))
			c := l.startConsult(t, doc)
			pat := l.guest(t, c.link, nil)
			docWS, patWS, guestID := l.inCall(t, doc, pat, c.id)

			if resp, _ := postForm(t, l.admin, l.public+"/admin/users/"+userID+"/"+action, url.Values{}); resp.StatusCode != 200 {
				t.Fatalf("%s = %d", action, resp.StatusCode)
			}
			_ = docWS.WriteJSON(map[string]any{"type": "admit", "member": guestID})
			closedAfter(t, docWS, "revoked")
			if ws, code := l.dialCall(t, doc, c.id); ws != nil || code != http.StatusForbidden {
				t.Fatalf("the clinician's page reconnected (status %d)", code)
			}
			// The guest is still waiting: a ping's answer comes, an
			// admission does not.
			_ = patWS.WriteJSON(map[string]any{"type": "ping", "id": "p1"})
			_ = patWS.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				var m map[string]any
				if err := patWS.ReadJSON(&m); err != nil {
					t.Fatalf("guest: %v", err)
				}
				if m["type"] == "admitted" {
					t.Fatal("a revoked clinician admitted the guest")
				}
				if m["type"] == "pong" {
					break
				}
			}
		})
	}
}

// Withdrawing a link ends the sessions of the guests who joined with it:
// their pages close and they cannot reconnect.
func TestWithdrawnLinkClosesItsGuestsPages(t *testing.T) {
	l := startLive(t)
	doc, _ := l.clinician(t, "dr.links")
	c := l.startConsult(t, doc)
	pat := l.guest(t, c.link, nil)
	docWS, patWS, guestID := l.inCall(t, doc, pat, c.id)
	_ = docWS.WriteJSON(map[string]any{"type": "admit", "member": guestID})
	next(t, patWS, "admitted")

	if resp, _ := postForm(t, doc, l.public+"/consults/"+c.id+"/links/"+c.linkID+"/revoke", url.Values{}); resp.StatusCode != 200 {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	closedAfter(t, patWS, "revoked")
	if ws, code := l.dialCall(t, pat, c.id); ws != nil || code != http.StatusForbidden {
		t.Fatalf("the guest reconnected with the withdrawn link's session (status %d)", code)
	}
	if resp, _ := get(t, pat, l.public+"/call"); resp.StatusCode != http.StatusGone {
		t.Fatalf("call page after the link was withdrawn = %d", resp.StatusCode)
	}
}

// The host's end message ends the consult as the dashboard's button does:
// record ended, links dead, pages closed, nobody reconnects, audited once.
func TestEndMessageEndsTheConsultForGood(t *testing.T) {
	l := startLive(t)
	doc, _ := l.clinician(t, "dr.ends")
	c := l.startConsult(t, doc)
	pat := l.guest(t, c.link, nil)
	docWS, patWS, guestID := l.inCall(t, doc, pat, c.id)
	_ = docWS.WriteJSON(map[string]any{"type": "admit", "member": guestID})
	next(t, patWS, "admitted")

	_ = docWS.WriteJSON(map[string]any{"type": "end"})
	closedAfter(t, patWS, "ended")
	closedAfter(t, docWS, "ended")
	for name, cl := range map[string]*http.Client{"guest": pat, "clinician": doc} {
		if ws, code := l.dialCall(t, cl, c.id); ws != nil || code != http.StatusForbidden {
			t.Errorf("the %s reconnected to the ended consult (status %d)", name, code)
		}
	}
	if resp, _ := get(t, pat, c.link); resp.StatusCode != http.StatusGone {
		t.Errorf("patient link after the end = %d, want 410", resp.StatusCode)
	}
	if resp, _ := get(t, doc, l.public+"/consults/"+c.id); resp.StatusCode != http.StatusGone {
		t.Errorf("call page after the end = %d, want 410", resp.StatusCode)
	}
	// The button after the message changes nothing and records nothing.
	if resp, _ := postForm(t, doc, l.public+"/consults/"+c.id+"/end", url.Values{}); resp.StatusCode != http.StatusGone {
		t.Errorf("end button after the end message = %d, want 410", resp.StatusCode)
	}
	_, body := get(t, l.admin, l.public+"/admin/audit?type=session.ended&room="+c.id)
	if n := strings.Count(body, "<td>session.ended</td>"); n != 1 {
		t.Fatalf("session.ended audited %d times, want once", n)
	}
}

// A denied guest cannot knock again with the same session, and after three
// denials the link refuses that device.
func TestDeniedGuestCannotKnockAgain(t *testing.T) {
	l := startLive(t)
	doc, _ := l.clinician(t, "dr.denies")
	c := l.startConsult(t, doc)
	docWS, code := l.dialCall(t, doc, c.id)
	if docWS == nil {
		t.Fatalf("clinician's call page refused: %d", code)
	}
	next(t, docWS, "admitted")

	device, _ := cookiejar.New(nil)
	for i := range 3 {
		pat := l.guest(t, c.link, device)
		patWS, code := l.dialCall(t, pat, c.id)
		if patWS == nil {
			t.Fatalf("knock %d refused: %d", i+1, code)
		}
		guestID := next(t, patWS, "welcome")["member"].(string)
		_ = docWS.WriteJSON(map[string]any{"type": "deny", "member": guestID})
		closedAfter(t, patWS, "denied")
		if ws, code := l.dialCall(t, pat, c.id); ws != nil || code != http.StatusForbidden {
			t.Fatalf("the denied guest knocked again with the same session (status %d)", code)
		}
	}
	cl := *l.client
	cl.Jar = device
	resp, body := postForm(t, &cl, c.link, url.Values{"name": {"Pat Example"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "this device") {
		t.Fatalf("fourth knock from the same device = %d", resp.StatusCode)
	}
	l.guest(t, c.link, nil) // another device still joins
}

// The call page shows why the server closed it and does not reconnect: a
// clinician who signs out everywhere from another tab sees the page end.
func TestBrowserCallPageEndsWhenSignedOutEverywhere(t *testing.T) {
	d, doc := startConsult(t, "dr.everywhere", false)
	defer d.stop()
	waitTrue(t, doc, "the host is in the call", `document.getElementById("status").textContent.includes("You are in the consult")`, 15*time.Second)
	waitTrue(t, doc, "sign out everywhere", `fetch("/signout/everywhere", {method: "POST"}).then(() => true)`, 10*time.Second)
	waitTrue(t, doc, "the page says it was signed out", `window.openConsult.state.over && document.getElementById("status").textContent.includes("signed out")`, 10*time.Second)
	// It stays closed: a reconnection would replace the closed socket.
	waitTrue(t, doc, "the socket closed", `window.openConsult.state.ws.readyState === WebSocket.CLOSED`, 10*time.Second)
	time.Sleep(3 * time.Second) // longer than the first reconnection delay
	waitTrue(t, doc, "no reconnection", `window.openConsult.state.ws.readyState === WebSocket.CLOSED && document.getElementById("status").textContent.includes("signed out")`, time.Second)
}
