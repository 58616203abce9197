package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sentLayersJS returns, for the video the page sends to the media server,
// how many simulcast layers it encodes (frames encoded over a second) and
// the width of the smallest.
const sentLayersJS = `(async () => {
  const pc = window.openConsult.mediaServer();
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "video" && s.track.readyState === "live");
  if (!sender) return [0, 0];
  const sample = async () => {
    const out = new Map();
    for (const s of (await sender.getStats()).values()) {
      if (s.type === "outbound-rtp" && s.kind === "video") out.set(s.rid || "", s);
    }
    return out;
  };
  const before = await sample();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  let n = 0, w = 1 << 20;
  for (const [rid, s] of await sample()) {
    const was = before.get(rid);
    if (!s.frameWidth || (s.framesEncoded || 0) - ((was && was.framesEncoded) || 0) < 5) continue;
    n++;
    w = Math.min(w, s.frameWidth);
  }
  return [n, n ? w : 0];
})()`

// tileLayerJS is true when the video of member's tile arrives from the
// media server and decodes (frames decoded increase over a second), at
// most (small) or more than (not small) width pixels wide.
const tileLayerJS = `((member, width, small) => (async () => {
  const fig = document.querySelector('figure.tile[data-member="' + member + '"]');
  const v = fig && fig.querySelector("video");
  const track = v && v.srcObject && v.srcObject.getVideoTracks().find((t) => t.readyState === "live");
  const r = track && window.openConsult.mediaServer()?.getReceivers().find((r) => r.track === track);
  if (!r || fig.classList.contains("no-video")) return false;
  const inbound = async () => {
    for (const s of (await r.getStats()).values()) if (s.type === "inbound-rtp") return s;
    return null;
  };
  const before = await inbound();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = await inbound();
  if (!before || !after || !after.frameWidth || (after.framesDecoded || 0) - (before.framesDecoded || 0) < 5) return false;
  return small ? after.frameWidth <= width : after.frameWidth > width;
})())`

// serverSectionsJS is how many media sections the page's description of
// its media server connection has.
const serverSectionsJS = `window.openConsult.mediaServer().localDescription.sdp.split("\r\n").filter((l) => l.startsWith("m=")).length`

// smallTilesJS shows every other member's tile 120 pixels wide.
const smallTilesJS = `(() => {
  document.getElementById("tiles").style.display = "block";
  for (const f of document.querySelectorAll("figure.tile:not(.self)")) f.style.width = "120px";
  return true;
})()`

// layersRound is one use of the video section of a member who joined
// without a camera: the camera (or the screen) on, checked, and off.
type layersRound struct {
	what   string
	button string // #camera or #share
	screen bool
	// joins: a fourth member joins first, with a microphone only, so the
	// server offers the member its publication.
	joins bool
	// shares: the member shares the screen during the camera and stops,
	// on the camera's section, which then sends the camera's layers again.
	shares bool
}

// TestBrowserCameraTurnedOnMidCallSendsLayers has a member who joined
// without a camera turn one on in a consult on the media server: it goes
// there in several simulcast layers, as a camera present at join does, so
// a member showing it in a small tile gets the smallest layer while one
// showing it larger gets a larger one, also when turned off and on again
// and on after a screen share (which goes in one layer). On after the
// server offered the member a newcomer's publication, and back from a
// share during it, it still reaches both viewers and decodes; and the
// member's description of the connection does not grow with each use.
func TestBrowserCameraTurnedOnMidCallSendsLayers(t *testing.T) {
	d, doc := startConsult(t, "dr.layers", false, "-sfu-min-participants", "2")
	defer d.stop()
	third := extraLink(t, doc, "family")
	c := layersConsult{d: d, doc: doc, fourth: extraLink(t, doc, "interpreter")}
	c.nocam, c.viewers = joinWithoutDevices(t, d, doc, "Nico Nocamera", true, third)
	c.nico = memberID(t, c.nocam, "Nico")
	do(t, c.viewers["patient"], "the patient shows the others small", chromedp.Evaluate[chromedp.Void](smallTilesJS))

	rounds := []layersRound{
		{what: "turns his camera on", button: "#camera"},
		{what: "turns his camera on again", button: "#camera"},
		{what: "shares the screen", button: "#share", screen: true},
		{what: "turns his camera on after a member joined", button: "#camera", joins: true},
		{what: "turns his camera on a fifth time", button: "#camera", shares: true},
	}
	var sections []int
	for i, r := range rounds {
		sections = append(sections, c.run(t, i, r))
	}
	t.Logf("media sections of Nico's description after each round: %v", sections)
	// One section, for Vic's sound, comes with Vic; Nico's own sections
	// take each other's place.
	for i := 1; i < len(rounds); i++ {
		grows := 0
		if rounds[i].joins {
			grows = 1
		}
		if sections[i] > sections[i-1]+grows {
			t.Errorf("Nico's description grew by %d in round %d, he %s: %v media sections after each round", sections[i]-sections[i-1], i, rounds[i].what, sections)
		}
	}
}

// layersConsult is the consult of TestBrowserCameraTurnedOnMidCallSendsLayers:
// Nico, who joined without a camera, the clinician and the patient who
// watch him, and a link for a fourth member.
type layersConsult struct {
	d       *devServer
	doc     context.Context
	fourth  string
	joined  bool // the fourth member is in
	nocam   context.Context
	nico    string // Nico's member id, as a JavaScript string
	viewers map[string]context.Context
}

// run plays round i and returns how many media sections Nico's
// description of his media server connection has after it.
func (c *layersConsult) run(t *testing.T, i int, r layersRound) int {
	t.Helper()
	if r.joins {
		c.joined = true
		vic := joinWithoutCamera(t, c.d, c.fourth, "Vic Viewer", true)
		admit(t, c.doc, "Vic Viewer")
		waitTrue(t, c.nocam, "Nico receives Vic's sound through the media server",
			fmt.Sprintf("%s(%s, true).then((r) => !!r && r[0] > 10)", tileSoundJS, memberID(t, vic, "Vic")), 90*time.Second)
	}
	do(t, c.nocam, "Nico "+r.what, chromedp.Click(chromedp.CSS(r.button)))
	if r.screen {
		checkScreenInOneLayer(t, c.nocam, c.viewers, c.nico)
	} else {
		// With a fourth browser on the machine, Chromium's encoder may
		// keep to one layer for minutes: once the fourth member is in,
		// the rounds check that the camera reaches both viewers and
		// decodes; those before, its layers and which one each viewer
		// gets.
		checkCameraLayers(t, c.nocam, c.viewers, c.nico, i, !c.joined)
	}
	if r.shares {
		do(t, c.nocam, "Nico shares the screen during his camera", chromedp.Click(chromedp.CSS("#share")))
		checkScreenInOneLayer(t, c.nocam, c.viewers, c.nico)
		do(t, c.nocam, "Nico stops sharing", chromedp.Click(chromedp.CSS("#share")))
		checkCameraLayers(t, c.nocam, c.viewers, c.nico, i, !c.joined)
	}
	do(t, c.nocam, "Nico stops after he "+r.what, chromedp.Click(chromedp.CSS(r.button)))
	for name, ctx := range c.viewers {
		waitTrue(t, ctx, fmt.Sprintf("round %d: Nico's picture leaves %s's tile", i, name), fmt.Sprintf("%s(%s)", tileWithoutPictureJS, c.nico), 30*time.Second)
	}
	waitTrue(t, c.nocam, "Nico's media server connection settles", `window.openConsult.mediaServer().signalingState === "stable"`, 30*time.Second)
	n, err := chromedp.Run(c.nocam, chromedp.Evaluate[int](serverSectionsJS))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkCameraLayers waits until the member's camera goes to the media
// server in several layers, the patient (small tiles) decodes the
// smallest and the clinician a larger one; without layers, until both
// decode it.
func checkCameraLayers(t *testing.T, member context.Context, viewers map[string]context.Context, id string, round int, layers bool) {
	t.Helper()
	if !layers {
		for name, ctx := range viewers {
			waitTrue(t, ctx, fmt.Sprintf("round %d: %s decodes Nico's camera", round, name),
				fmt.Sprintf("%s(%s, 0, false)", tileLayerJS, id), 60*time.Second)
		}
		return
	}
	// The encoder may drop layers for a while on a busy machine: the
	// smallest width is the one seen with several layers.
	waitTrue(t, member, fmt.Sprintf("round %d: Nico's camera goes to the media server in several layers", round),
		sentLayersJS+`.then(([n, w]) => n >= 2 && ((window.smallestLayer = w), true))`, 60*time.Second)
	smallest, err := chromedp.Run(member, chromedp.Evaluate[int](`window.smallestLayer`))
	if err != nil || smallest <= 0 {
		t.Fatalf("round %d: Nico's smallest layer %d px wide: %v", round, smallest, err)
	}
	waitTrue(t, viewers["patient"], fmt.Sprintf("round %d: the patient, with small tiles, decodes Nico's smallest layer (%d px)", round, smallest),
		fmt.Sprintf("%s(%s, %d, true)", tileLayerJS, id, smallest), 60*time.Second)
	waitTrue(t, viewers["clinician"], fmt.Sprintf("round %d: the clinician decodes a larger layer of Nico's camera", round),
		fmt.Sprintf("%s(%s, %d, false)", tileLayerJS, id, smallest), 60*time.Second)
}

// checkScreenInOneLayer waits until the member's screen goes to the media
// server in one layer and both viewers decode it.
func checkScreenInOneLayer(t *testing.T, member context.Context, viewers map[string]context.Context, id string) {
	t.Helper()
	for name, ctx := range viewers {
		waitTrue(t, ctx, name+" decodes Nico's screen", fmt.Sprintf("%s(%s, true)", tileDecodesJS, id), 60*time.Second)
	}
	sent, err := chromedp.Run(member, chromedp.Evaluate[[]int](sentLayersJS, chromedp.EvalAwaitPromise))
	if err != nil || len(sent) != 2 || sent[0] != 1 {
		t.Errorf("Nico's screen goes in layers %v (%v), want one", sent, err)
	}
}
