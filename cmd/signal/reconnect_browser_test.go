package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// browserCall has a clinician's browser sign in on site and start a
// consult, then a patient's browser open its link, wait in the lobby and be
// admitted, and waits until each decodes the other's video. beforePatient,
// when not nil, runs with the clinician's page and the patient's link
// before the patient opens it.
func browserCall(t *testing.T, site *devServer, clinician, password string, beforePatient func(doc context.Context, link string)) (doc, patient context.Context) {
	t.Helper()
	doc = browsertest.New(t)
	browserSignIn(t, doc, site, clinician, password)
	startConsultFromDashboard(t, doc)
	waitTrue(t, doc, "the clinician's call connected", `!!window.openConsult.state.me`, 30*time.Second)
	link := patientLink(t, doc)
	if beforePatient != nil {
		beforePatient(doc, link)
	}
	patient = browsertest.New(t)
	do(t, patient, "patient joins",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Pat Example"),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	waitTrue(t, doc, "clinician sees the waiting patient", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Example"))`, 30*time.Second)
	do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
	waitTrue(t, patient, "patient admitted", `!document.getElementById("stage").hidden`, 30*time.Second)
	waitTrue(t, doc, "clinician decodes the patient's video", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician's video", remoteVideoDecoding, 90*time.Second)
	return doc, patient
}

// chatBothWays has the patient and the clinician each send a message the
// other reads.
func chatBothWays(t *testing.T, doc, patient context.Context, when string) {
	t.Helper()
	for _, c := range []struct {
		from, to context.Context
		who      string
	}{{patient, doc, "patient"}, {doc, patient, "clinician"}} {
		text := "From the " + c.who + " " + when
		// The form is filled and sent from the page: what is under test is
		// the message's way through the signaling server, and a synthetic
		// key press can wait long on a page busy decoding video.
		send := `(() => { document.getElementById("chat-text").value = ` + jsString(text) + `; document.getElementById("chat-form").requestSubmit(); return true; })()`
		if _, err := chromedp.Run(c.from, chromedp.Evaluate[bool](send)); err != nil {
			t.Fatalf("the %s chats: %v", c.who, err)
		}
		waitTrue(t, c.to, "the "+c.who+"'s chat "+when+" arrives", `document.getElementById("chat-log").textContent.includes(`+jsString(text)+`)`, 20*time.Second)
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// noticedServerGone waits until every page saw its signaling socket close.
func noticedServerGone(t *testing.T, pages map[string]context.Context) {
	t.Helper()
	for name, page := range pages {
		waitTrue(t, page, name+"'s page notices the server went away", `window.openConsult.state.wsDown === true`, 30*time.Second)
	}
}

// backInTheCall waits until every page is in the call again, without
// going through the lobby, and decodes video from the others again; doc is
// the clinician's page, whose lobby stays empty.
func backInTheCall(t *testing.T, doc context.Context, pages map[string]context.Context) {
	t.Helper()
	for name, page := range pages {
		waitTrue(t, page, name+"'s page back in the call", `window.openConsult.state.wsDown === false && window.openConsult.state.admitted && !document.getElementById("stage").hidden && document.getElementById("lobby-wait").hidden`, 60*time.Second)
	}
	waitTrue(t, doc, "nobody waits in the clinician's lobby", `document.querySelectorAll("#lobby li.waiting").length === 0`, 5*time.Second)
	for name, page := range pages {
		videoKeepsDecoding(t, page, name+" decodes the others' video again", len(pages)-1, 90*time.Second)
	}
}

// restartableServer starts signal as a process on dir, with an
// administrator and a clinician, and returns it and its HTTPS address.
func restartableServer(t *testing.T, dir, clinician string) (*replica, string) {
	t.Helper()
	r := startReplica(t, "first", dir)
	createFirstAdmin(t, r.devServer, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, r.devServer, "chief.admin", "a long admin passphrase")
	createClinician(t, r.devServer, dir, admin, clinician, "a long clinician passphrase")
	return r, httpsAddr(t, r)
}

// restart stops the server and starts it again on the same data and
// address, once every page noticed it went away.
func restart(t *testing.T, r *replica, dir, addr string, pages map[string]context.Context) *replica {
	t.Helper()
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	noticedServerGone(t, pages)
	again := startReplica(t, "restarted", dir, "-listen", addr)
	if got := httpsAddr(t, again); got != addr {
		t.Fatalf("the restarted server listens on %s, want %s", got, addr)
	}
	return again
}

// verifyAudit stops the server and verifies its audit log.
func verifyAudit(t *testing.T, r *replica, dir string) {
	t.Helper()
	if err := r.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if out, err := runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// TestBrowserCallResumesAfterTheServerRestarts runs a consult in two
// Chromiums on one signal process with its data on disk, stops the process
// and starts it again on the same address: both pages reconnect, the
// patient is in the call again without the lobby, video flows both ways
// again and chat goes both ways.
func TestBrowserCallResumesAfterTheServerRestarts(t *testing.T) {
	dir := t.TempDir()
	server, addr := restartableServer(t, dir, "dr.restart")
	doc, patient := browserCall(t, server.devServer, "dr.restart", "a long clinician passphrase", nil)
	chatBothWays(t, doc, patient, "before the restart")
	pages := map[string]context.Context{"clinician": doc, "patient": patient}
	server = restart(t, server, dir, addr, pages)
	backInTheCall(t, doc, pages)
	chatBothWays(t, doc, patient, "after the restart")
	verifyAudit(t, server, dir)
}

// TestBrowserMediaServerCallResumesAfterTheServerRestarts does the same in
// a consult of three on the media node, which restarts with the server:
// each page connects to the new media node and decodes both others there.
func TestBrowserMediaServerCallResumesAfterTheServerRestarts(t *testing.T) {
	dir := t.TempDir()
	server, addr := restartableServer(t, dir, "dr.node")
	var second string
	doc, patient := browserCall(t, server.devServer, "dr.node", "a long clinician passphrase", func(doc context.Context, _ string) {
		second = extraLink(t, doc, "interpreter")
	})
	interpreter := joinAsGuest(t, second, "Ines Interpreter")
	admit(t, doc, "Ines Interpreter")
	pages := map[string]context.Context{"clinician": doc, "patient": patient, "interpreter": interpreter}
	for name, page := range pages {
		waitTrue(t, page, name+" decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	}
	server = restart(t, server, dir, addr, pages)
	backInTheCall(t, doc, pages)
	for name, page := range pages {
		waitTrue(t, page, name+" decodes both others through the media server again", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	}
	verifyAudit(t, server, dir)
}
