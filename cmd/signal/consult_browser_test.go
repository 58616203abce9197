package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/internal/eventually"
)

// staffClient is a cookie-keeping HTTP client for the development server.
func (d *devServer) staffClient(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *d.client
	c.Jar = jar
	return &c
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = io.Copy(b, resp.Body)
	return resp, b.String()
}

var secretPattern = regexp.MustCompile(`id="totp-secret"[^>]*>([A-Z2-7]+)<`)

// signInHTTP signs a user in over HTTP, enrolling TOTP on the way when
// asked, and returns the client holding the full session.
func signInHTTP(t *testing.T, d *devServer, username, password string) *http.Client {
	t.Helper()
	c := d.staffClient(t)
	c.CheckRedirect = nil // follow redirects to the next step
	_, body := postForm(t, c, d.public+"/signin", url.Values{"username": {username}, "password": {password}})
	m := secretPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no enrollment after sign-in:\n%s", body)
	}
	resp, body := postForm(t, c, d.public+"/account/totp", url.Values{"code": {totpCode(t, m[1], time.Now())}})
	if resp.StatusCode != 200 || !strings.Contains(body, "recovery-codes") {
		t.Fatalf("enrollment = %d", resp.StatusCode)
	}
	return c
}

// createClinician has the administrator create an account, then activates
// it with the link from the outbox, as the clinician would from e-mail.
func createClinician(t *testing.T, d *devServer, dataDir string, admin *http.Client, username, password string) {
	t.Helper()
	resp, body := postForm(t, admin, d.public+"/admin/users", url.Values{"username": {username}, "email": {username + "@example-hospital.org"}, "role": {"clinician"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "created") {
		t.Fatalf("create clinician = %d:\n%s", resp.StatusCode, body)
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "outbox"))
	var token string
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dataDir, "outbox", e.Name()))
		if m := regexp.MustCompile(`/activate/([A-Za-z0-9_-]+)`).FindStringSubmatch(string(b)); m != nil && strings.Contains(string(b), username) {
			token = m[1]
		}
	}
	if token == "" {
		t.Fatal("no activation message in the outbox")
	}
	c := d.staffClient(t)
	if resp, body := postForm(t, c, d.public+"/activate/"+token, url.Values{"password": {password}, "confirm": {password}}); resp.StatusCode != 200 {
		t.Fatalf("activation = %d:\n%s", resp.StatusCode, body)
	}
}

// browserSignIn signs in through the pages, enrolling TOTP when asked.
func browserSignIn(t *testing.T, ctx context.Context, d *devServer, username, password string) {
	t.Helper()
	do(t, ctx, "sign in",
		chromedp.Navigate(d.public+"/signin"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#totp-secret")),
	)
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#code"), totpCode(t, strings.TrimSpace(secret), time.Now())),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#recovery-codes")),
		chromedp.Click(chromedp.CSS("a.button")),
	)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
}

// startConsultFromDashboard starts a consult from the clinician's
// dashboard. It clicks only once the dashboard is the loaded page: a click
// on a node of the page still being replaced fails in the browser ("could
// not find node"), which is no fault of the site.
func startConsultFromDashboard(t *testing.T, doc context.Context) {
	t.Helper()
	waitTrue(t, doc, "the dashboard", `document.readyState === "complete" && !!document.getElementById("new-consult-button")`, 30*time.Second)
	do(t, doc, "start consult",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("new-consult-button").click()`),
		chromedp.WaitVisible(chromedp.CSS("#links-title")),
	)
}

// do runs browser actions with a deadline, so a page that never shows an
// element fails the test instead of hanging it.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + ": " + (document.getElementById("status")?.textContent || document.querySelector(".error, h1")?.textContent || "")`))
		t.Fatalf("%s: %v (page: %q)", what, err, status)
	}
}

// waitTrue polls a JavaScript condition in the page.
func waitTrue(t *testing.T, ctx context.Context, what, js string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
  let out = (document.getElementById("status")?.textContent || document.title) + " | policy " + (window.openConsult?.state.policy || "");
  for (const pc of window.openConsult?.peers() || []) {
    out += " | pc " + pc.signalingState + "/" + pc.iceConnectionState + "/" + pc.connectionState;
    const stats = await pc.getStats();
    for (const s of stats.values()) if (s.type === "candidate-pair" && s.nominated) out += " | pair " + s.state + " " + stats.get(s.localCandidateId)?.candidateType + "/" + stats.get(s.remoteCandidateId)?.candidateType;
  }
  return out;
})()`, chromedp.EvalAwaitPromise))
			t.Fatalf("%s: not within %s (err %v, page says %q)", what, within, err, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// remoteVideoDecoding is true when a remote tile shows video and the
// peer connection has decoded frames.
const remoteVideoDecoding = `(async () => {
  const v = document.querySelector("figure.tile:not(.self) video");
  if (!v || v.videoWidth === 0) return false;
  for (const pc of window.openConsult.peers()) {
    const stats = await pc.getStats();
    for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 10) return true;
  }
  return false;
})()`

// videoStillDecodingJS is true when n remote tiles show a picture and the
// page's connections, direct or to the media server, decode at least 10
// more video frames of each of n streams over a second: video flows now,
// not only earlier.
const videoStillDecodingJS = `((n) => (async () => {
  const frames = async () => {
    const out = new Map();
    const pcs = [...window.openConsult.peers()];
    if (window.openConsult.mediaServer()) pcs.push(window.openConsult.mediaServer());
    for (const pc of pcs) {
      const stats = await pc.getStats().catch(() => new Map());
      for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "video") out.set(pc, { ...out.get(pc), [s.id]: s.framesDecoded || 0 });
    }
    return out;
  };
  const shown = () => [...document.querySelectorAll("figure.tile:not(.self) video")].filter(v => v.videoWidth > 0).length >= n;
  if (!shown()) return false;
  const before = await frames();
  await new Promise(resolve => setTimeout(resolve, 1000));
  const after = await frames();
  let flowing = 0;
  for (const [pc, streams] of after) {
    for (const [id, frames] of Object.entries(streams)) if (before.get(pc)?.[id] !== undefined && frames - before.get(pc)[id] >= 10) flowing++;
  }
  return flowing >= n && shown();
})())`

// videoKeepsDecoding waits until the page decodes video from n others now.
func videoKeepsDecoding(t *testing.T, page context.Context, what string, n int, within time.Duration) {
	t.Helper()
	js := fmt.Sprintf("%s(%d)", videoStillDecodingJS, n)
	eventually.True(t, within, what, func() bool {
		ok, err := chromedp.Run(page, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		return err == nil && ok
	})
}

// selectedPairIsRelay is true when every peer connection's selected
// candidate pair uses a relayed local candidate.
const selectedPairIsRelay = `(async () => {
  const pcs = window.openConsult.peers();
  if (pcs.length === 0) return false;
  for (const pc of pcs) {
    const stats = await pc.getStats();
    let pair = null;
    for (const s of stats.values()) if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    if (!pair) return false;
    const local = stats.get(pair.localCandidateId);
    if (!local || local.candidateType !== "relay") return false;
  }
  return true;
})()`

func TestBrowserConsultLobbyVideoAndChat(t *testing.T) { browserConsult(t, false) }

// TestBrowserConsultRelayOnly runs the consult with media forced through
// the embedded TURN relay, and proves the selected path is a relay one.
func TestBrowserConsultRelayOnly(t *testing.T) { browserConsult(t, true) }

// startConsult starts a development server with an administrator and a
// clinician, signs the clinician in in a browser and starts a consult,
// relay-only if asked, with extra server flags. The caller stops the
// server.
func startConsult(t *testing.T, clinician string, relayOnly bool, extra ...string) (*devServer, context.Context) {
	t.Helper()
	return startConsultAdjusted(t, clinician, relayOnly, nil, extra...)
}

// startConsultAdjusted is startConsult on a server whose settings adjust
// changed.
func startConsultAdjusted(t *testing.T, clinician string, relayOnly bool, adjust func(*settings), extra ...string) (*devServer, context.Context) {
	t.Helper()
	return startConsultIn(t, t.TempDir(), clinician, relayOnly, adjust, extra...)
}

// startConsultIn is startConsultAdjusted with the server's data in dir.
func startConsultIn(t *testing.T, dir, clinician string, relayOnly bool, adjust func(*settings), extra ...string) (*devServer, context.Context) {
	t.Helper()
	d := startDevAdjusted(t, dir, adjust, extra...)
	t.Cleanup(func() { d.stop() }) // stop is idempotent; this covers a failure below
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, clinician, "a long clinician passphrase")

	doc := browsertest.New(t)
	browserSignIn(t, doc, d, clinician, "a long clinician passphrase")
	if relayOnly {
		do(t, doc, "relay option", chromedp.WaitVisible(chromedp.CSS(`input[name="relay_only"]`)), chromedp.Click(chromedp.CSS(`input[name="relay_only"]`)))
		waitTrue(t, doc, "relay option ticked", `document.querySelector('input[name="relay_only"]').checked`, 5*time.Second)
	}
	startConsultFromDashboard(t, doc)
	return d, doc
}

func browserConsult(t *testing.T, relayOnly bool) {
	d, doc := startConsult(t, "dr.house", relayOnly)
	defer d.stop()
	link := patientLink(t, doc)

	patient := browsertest.New(t)
	err := chromedp.Do(patient,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Pat Example"),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	if err != nil {
		t.Fatalf("patient join: %v", err)
	}
	// In the lobby the patient sees nobody and no chat.
	waitTrue(t, patient, "lobby holds the patient", `document.getElementById("stage").hidden && document.querySelectorAll("#roster li").length === 0`, 5*time.Second)

	waitTrue(t, doc, "clinician sees the waiting patient", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Example"))`, 15*time.Second)
	do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
	waitTrue(t, patient, "patient admitted", `!document.getElementById("stage").hidden`, 15*time.Second)

	waitTrue(t, doc, "clinician decodes the patient's video", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician's video", remoteVideoDecoding, 90*time.Second)

	say := func(ctx context.Context, text string) {
		t.Helper()
		do(t, ctx, "chat", chromedp.SendKeys(chromedp.CSS("#chat-text"), text), chromedp.Click(chromedp.CSS("#chat-form button")))
	}
	say(patient, "Hello doctor, can you hear me?")
	waitTrue(t, doc, "clinician reads the patient's chat", `document.getElementById("chat-log").textContent.includes("can you hear me?")`, 10*time.Second)
	say(doc, "Yes, loud and clear.")
	waitTrue(t, patient, "patient reads the clinician's chat", `document.getElementById("chat-log").textContent.includes("loud and clear")`, 10*time.Second)

	// The patient shares a photo; a file of another type is refused.
	upload := `(async (b64, type, name) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const body = new FormData();
  body.append("file", new Blob([bytes], { type }), name);
  const res = await fetch("/consults/" + document.getElementById("call").dataset.consult + "/files", { method: "POST", body });
  return res.status;
})`
	png := "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	status, err := chromedp.Run(patient, chromedp.Evaluate[int](upload+`("`+png+`", "image/png", "rash.png")`, chromedp.EvalAwaitPromise))
	if err != nil || status != 201 {
		t.Fatalf("photo upload = %d, %v", status, err)
	}
	status, err = chromedp.Run(patient, chromedp.Evaluate[int](upload+`("`+"PGh0bWw+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="+`", "image/png", "evil.png")`, chromedp.EvalAwaitPromise))
	if err != nil || status != 415 {
		t.Fatalf("HTML disguised as PNG = %d, %v; want 415", status, err)
	}
	waitTrue(t, doc, "clinician sees the shared photo", `[...document.querySelectorAll("#chat-log a.file-link")].some(a => a.textContent.startsWith("rash.png"))`, 10*time.Second)
	waitTrue(t, doc, "clinician downloads the photo", `(async () => {
  const a = document.querySelector("#chat-log a.file-link");
  const res = await fetch(a.href);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return res.ok && res.headers.get("content-type") === "image/png" && /attachment/.test(res.headers.get("content-disposition")) && bytes.length === 70 && bytes[1] === 0x50;
})()`, 10*time.Second)

	// The indicator names the path media takes.
	waitTrue(t, doc, "connection indicator", `/direct (UDP|TCP)|relay (UDP|TCP|TLS)/.test(document.getElementById("path").textContent)`, 10*time.Second)
	if relayOnly {
		for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
			waitTrue(t, ctx, name+" media through the relay", selectedPairIsRelay, 10*time.Second)
		}
		// Chrome may reach the relay over UDP, TCP or TLS; the indicator
		// names whichever carries the media, on both sides of the pair.
		waitTrue(t, doc, "indicator says relay on both sides", `/relay (UDP|TCP|TLS) on your side and relay on Pat Example's side/.test(document.getElementById("path").textContent)`, 10*time.Second)
	}

	// The clinician reads the chat in the consult's record.
	consultID, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.getElementById("call").dataset.consult`))
	if err != nil {
		t.Fatal(err)
	}
	record, _ := d.client.Get(d.public + "/consults/" + consultID + "/record")
	if record.StatusCode != http.StatusSeeOther { // not signed in on this client: sent to sign-in
		t.Fatalf("record page without a session = %d", record.StatusCode)
	}
	record.Body.Close()

	// A reload keeps the patient's place and chat, without a new admission.
	do(t, patient, "reload", chromedp.Reload())
	waitTrue(t, patient, "patient resumes after reload", `!document.getElementById("stage").hidden && document.getElementById("chat-log").textContent.includes("loud and clear")`, 15*time.Second)

	do(t, doc, "record page", chromedp.Navigate(d.public+"/consults/"+consultID+"/record"), chromedp.WaitVisible(chromedp.CSS("#transcript")))
	waitTrue(t, doc, "chat in the record", `document.getElementById("transcript").textContent.includes("can you hear me?") && document.getElementById("transcript").textContent.includes("loud and clear")`, 5*time.Second)
}
