package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// decodingFromEveryoneViaServer is true when the tab's media server
// connection decodes video from n other members, each shown in its tile,
// and no direct connection is left.
const decodingFromEveryoneViaServer = `((n) => (async () => {
  const pc = window.openConsult.mediaServer();
  if (!pc || window.openConsult.peers().length !== 0) return false;
  const stats = await pc.getStats();
  let decoding = 0;
  for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 10) decoding++;
  const tiles = [...document.querySelectorAll("figure.tile:not(.self) video")].filter(v => v.videoWidth > 0 && v.srcObject && v.srcObject.id.includes("/"));
  return decoding >= n && tiles.length >= n;
})())`

// extraLink has the clinician's consult page make one more guest link,
// with a label, and returns it.
func extraLink(t *testing.T, doc context.Context, label string) string {
	t.Helper()
	before, err := chromedp.Run(doc, chromedp.Evaluate[int](`document.querySelectorAll(".link-url").length`))
	if err != nil {
		t.Fatal(err)
	}
	do(t, doc, label+" link",
		chromedp.SetValue(chromedp.CSS("#label"), label),
		chromedp.Click(chromedp.CSS(`form[action$="/links"] button`)),
	)
	waitTrue(t, doc, "one more link", fmt.Sprintf(`document.querySelectorAll(".link-url").length === %d`, before+1), 15*time.Second)
	links, err := chromedp.Run(doc, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".link-url")].map(i => i.value)`))
	if err != nil || len(links) != before+1 || !strings.Contains(links[before], "/j/") {
		t.Fatalf("links %q: %v", links, err)
	}
	return links[before]
}

// joinAsGuest opens link in a new browser, gives a name and waits in the lobby.
func joinAsGuest(t *testing.T, link, name string) context.Context {
	t.Helper()
	ctx := browsertest.New(t)
	do(t, ctx, name+" opens the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	// The form must not move when the camera preview starts: a click aimed
	// at Join would land elsewhere.
	joinTop := `document.getElementById("join-button").getBoundingClientRect().top`
	before, err := chromedp.Run(ctx, chromedp.Evaluate[float64](joinTop))
	if err != nil {
		t.Fatal(err)
	}
	waitTrue(t, ctx, name+"'s camera preview", `document.getElementById("preview").videoWidth > 0`, 15*time.Second)
	if after, err := chromedp.Run(ctx, chromedp.Evaluate[float64](joinTop)); err != nil || after != before {
		t.Errorf("the Join button moved from %.0f to %.0f px when the preview started (%v)", before, after, err)
	}
	do(t, ctx, name+" joins",
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	return ctx
}

func admit(t *testing.T, host context.Context, name string) {
	t.Helper()
	waitTrue(t, host, "the host sees "+name+" waiting", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("`+name+`"))`, 15*time.Second)
	admitJS := `(() => { const li = [...document.querySelectorAll("#lobby li.waiting")].find(li => li.textContent.includes("` + name + `")); li.querySelector("button.admit").click(); return true; })()`
	if _, err := chromedp.Run(host, chromedp.Evaluate[bool](admitJS)); err != nil {
		t.Fatalf("admit %s: %v", name, err)
	}
}

// TestBrowserThirdParticipantMovesTheConsultToTheMediaServer runs a consult
// of a clinician and a patient peer to peer, admits an interpreter, and
// checks that all three then decode each other's video through the
// embedded media server with the direct connections closed.
func TestBrowserThirdParticipantMovesTheConsultToTheMediaServer(t *testing.T) {
	browserMoveToMediaServer(t, false)
}

// TestBrowserMediaServerThroughTheRelay does the same in a relay-only
// consult: browsers reach the media server through the TURN relay.
func TestBrowserMediaServerThroughTheRelay(t *testing.T) { browserMoveToMediaServer(t, true) }

// TestBrowserMediaServerOnItsOwnTransport does the same with the media
// server's sessions on its own transport: ICE-lite, DTLS and SRTP on one
// shared UDP port, and the node's own offers and answers.
func TestBrowserMediaServerOnItsOwnTransport(t *testing.T) {
	browserMoveToMediaServer(t, false, "-sfu-udp-listen", "127.0.0.1:0", "-sfu-own-transport")
}

// mediaServerPairIsRelay is true when the media server connection's
// selected candidate pair uses a relayed local candidate.
const mediaServerPairIsRelay = `(async () => {
  const pc = window.openConsult.mediaServer();
  if (!pc) return false;
  const stats = await pc.getStats();
  let pair = null;
  for (const s of stats.values()) if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  const local = pair && stats.get(pair.localCandidateId);
  return !!local && local.candidateType === "relay";
})()`

func browserMoveToMediaServer(t *testing.T, relayOnly bool, flags ...string) {
	d, doc := startConsult(t, "dr.grey", relayOnly, flags...)
	defer d.stop()
	// A second link, for the interpreter, before anyone joins.
	second := extraLink(t, doc, "interpreter")
	first := patientLink(t, doc)

	patient := joinAsGuest(t, first, "Pat Example")
	admit(t, doc, "Pat Example")
	waitTrue(t, doc, "clinician decodes the patient peer to peer", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician peer to peer", remoteVideoDecoding, 90*time.Second)
	if onServer, _ := chromedp.Run(doc, chromedp.Evaluate[bool](`window.openConsult.mediaServer() !== null`)); onServer {
		t.Fatal("a consult of two is on the media server")
	}

	// Watch the patient's tile through the move: the longest stretch in
	// which it had no picture to show.
	watchTile := `(() => {
  window.__longestGap = 0;
  let since = null;
  setInterval(() => {
    const v = [...document.querySelectorAll("figure.tile:not(.self) video")][0];
    const showing = v && v.readyState >= 2 && v.videoWidth > 0;
    if (showing) since = null;
    else if (since === null) since = performance.now();
    else window.__longestGap = Math.max(window.__longestGap, performance.now() - since);
  }, 50);
  return true;
})()`
	if _, err := chromedp.Run(doc, chromedp.Evaluate[bool](watchTile)); err != nil {
		t.Fatal(err)
	}
	interpreter := joinAsGuest(t, second, "Ines Interpreter")
	admit(t, doc, "Ines Interpreter")
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient, "interpreter": interpreter} {
		waitTrue(t, ctx, name+" decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	}
	// While the consult moved, the patient's tile on the clinician's
	// screen never went without a picture for more than a moment.
	gap, err := chromedp.Run(doc, chromedp.Evaluate[float64](`window.__longestGap`))
	if err != nil {
		t.Fatal(err)
	}
	if gap > 1500 {
		t.Errorf("the patient's tile showed no picture for %.0f ms during the move", gap)
	}
	t.Logf("longest time without a picture during the move: %.0f ms", gap)
	// The indicator shows the media server's path like a direct one.
	waitTrue(t, patient, "connection indicator", `/Media server: (direct|relay) (UDP|TCP|TLS)/.test(document.getElementById("path").textContent)`, 10*time.Second)
	if relayOnly {
		for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient, "interpreter": interpreter} {
			waitTrue(t, ctx, name+" reaches the media server through the relay", mediaServerPairIsRelay, 10*time.Second)
		}
	}

	// The clinician publishes the camera in several simulcast layers.
	layers, err := chromedp.Run(doc, chromedp.Evaluate[int](`(async () => {
  const stats = await window.openConsult.mediaServer().getStats();
  let n = 0;
  for (const s of stats.values()) if (s.type === "outbound-rtp" && s.kind === "video" && s.rid && s.framesEncoded > 0) n++;
  return n;
})()`, chromedp.EvalAwaitPromise))
	if err != nil || layers < 2 {
		t.Fatalf("the camera goes to the media server in %d layers (%v), want simulcast", layers, err)
	}
	// Shown in small tiles, both cameras arrive in their smallest layer
	// (bandwidth on a busy machine may have chosen it already).
	smallestSent := `(async () => {
  const stats = await window.openConsult.mediaServer().getStats();
  let w = 1 << 20;
  for (const s of stats.values()) if (s.type === "outbound-rtp" && s.kind === "video" && s.frameWidth) w = Math.min(w, s.frameWidth);
  return w;
})()`
	smallest := 0
	for _, ctx := range []context.Context{doc, interpreter} {
		w, err := chromedp.Run(ctx, chromedp.Evaluate[int](smallestSent, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		smallest = max(smallest, w)
	}
	if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](`(() => { for (const f of document.querySelectorAll("figure.tile:not(.self)")) f.style.width = "120px"; document.getElementById("tiles").style.display = "block"; return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitTrue(t, patient, "the smallest layer for small tiles", fmt.Sprintf(`(async () => {
  const stats = await window.openConsult.mediaServer().getStats();
  let n = 0;
  for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "video" && s.frameWidth) { if (s.frameWidth > %d) return false; n++; }
  return n === 2;
})()`, smallest), 30*time.Second)

	// Hidden tiles are sent no video while audio goes on; shown again, the
	// video resumes.
	const received = `(async () => {
  const stats = await window.openConsult.mediaServer().getStats();
  let video = 0, audio = 0;
  for (const s of stats.values()) if (s.type === "inbound-rtp") { if (s.kind === "video") video += s.bytesReceived || 0; else audio += s.packetsReceived || 0; }
  return [video, audio];
})()`
	count := func() (videoBytes, audio int) {
		got, err := chromedp.Run(patient, chromedp.Evaluate[[]int](received, chromedp.EvalAwaitPromise))
		if err != nil || len(got) != 2 {
			t.Fatalf("inbound counts %v: %v", got, err)
		}
		return got[0], got[1]
	}
	showTiles := func(display string) {
		js := `(() => { for (const f of document.querySelectorAll("figure.tile:not(.self)")) f.style.display = "` + display + `"; return true; })()`
		if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](js)); err != nil {
			t.Fatal(err)
		}
	}
	showTiles("none")
	var videoBytes, audio int
	for deadline := time.Now().Add(15 * time.Second); ; {
		videoBytes, audio = count()
		time.Sleep(time.Second)
		if v, _ := count(); v == videoBytes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("video kept arriving for hidden tiles")
		}
	}
	time.Sleep(time.Second)
	if v, a := count(); v != videoBytes || a < audio+50 {
		t.Fatalf("hidden tiles: %d more video bytes, %d more audio packets; want none and audio going on", v-videoBytes, a-audio)
	}
	showTiles("")
	waitTrue(t, patient, "video resumes when the tiles are shown", fmt.Sprintf(`%s.then(([v]) => v > %d + 20000)`, received, videoBytes), 15*time.Second)

	// The interpreter leaves; the others keep seeing each other, and after
	// -sfu-return-after (10 s) they are back on a direct connection, with
	// the media server connection closed, the patient's tile never long
	// without a picture on the way.
	if _, err := chromedp.Run(doc, chromedp.Evaluate[bool](`(() => { window.__longestGap = 0; return true; })()`)); err != nil {
		t.Fatal(err)
	}
	do(t, interpreter, "interpreter leaves", chromedp.Click(chromedp.CSS("#leave")))
	waitTrue(t, doc, "the interpreter's tile goes", `document.querySelectorAll("figure.tile:not(.self)").length === 1`, 30*time.Second)
	waitTrue(t, patient, "patient still decodes the clinician", decodingFromEveryoneViaServer+`(1)`, 30*time.Second)
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" is back on a direct connection", `window.openConsult.mediaServer() === null && window.openConsult.peers().length === 1`, 90*time.Second)
		waitTrue(t, ctx, name+" decodes the other directly", remoteVideoDecoding, 30*time.Second)
	}
	gap, err = chromedp.Run(doc, chromedp.Evaluate[float64](`window.__longestGap`))
	if err != nil {
		t.Fatal(err)
	}
	if gap > 1500 {
		t.Errorf("the patient's tile showed no picture for %.0f ms during the move back", gap)
	}
	t.Logf("longest time without a picture during the move back: %.0f ms", gap)
	if relayOnly {
		waitTrue(t, doc, "the direct connection goes through the relay", selectedPairIsRelay, 10*time.Second)
	}
}

// patientLink is the patient link the clinician's consult page shows.
func patientLink(t *testing.T, doc context.Context) string {
	t.Helper()
	link, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.querySelector(".link-url").value`))
	if err != nil || !strings.Contains(link, "/j/") {
		t.Fatalf("patient link %q: %v", link, err)
	}
	return link
}
