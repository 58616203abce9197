package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The test browser's fake screen is 16:9 (800x450), its fake camera 4:3
// (640x480): the shape of the decoded frames tells which one arrives.

// tileDecodesJS is true when the tile of member shows a picture that the
// page's connections, direct or to the media server, decode now (ten
// frames in a second), a screen's (wide) or a camera's (not wide).
const tileDecodesJS = `((member, wide) => (async () => {
  const fig = document.querySelector('figure.tile[data-member="' + member + '"]');
  const v = fig && fig.querySelector("video");
  const track = v && v.srcObject && v.srcObject.getVideoTracks().find((t) => t.readyState === "live");
  if (!track || fig.classList.contains("no-video") || v.videoWidth === 0) return false;
  const pcs = [...window.openConsult.peers()];
  if (window.openConsult.mediaServer()) pcs.push(window.openConsult.mediaServer());
  const inbound = async () => {
    for (const pc of pcs) {
      const r = pc.getReceivers().find((r) => r.track === track);
      if (!r) continue;
      for (const s of (await r.getStats()).values()) if (s.type === "inbound-rtp") return s;
    }
    return null;
  };
  const before = await inbound();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = await inbound();
  if (!before || !after || (after.framesDecoded || 0) - (before.framesDecoded || 0) < 10) return false;
  const ratio = (w, h) => w / h > 1.6;
  return ratio(after.frameWidth, after.frameHeight) === wide && ratio(v.videoWidth, v.videoHeight) === wide;
})())`

// tileWithoutPictureJS is true when the tile of member shows the name card
// and its stream has no video track left: no last frame stays behind.
const tileWithoutPictureJS = `((member) => {
  const fig = document.querySelector('figure.tile[data-member="' + member + '"]');
  const v = fig && fig.querySelector("video");
  return !!fig && fig.classList.contains("no-video") && getComputedStyle(v).visibility === "hidden" &&
    (!v.srcObject || v.srcObject.getVideoTracks().length === 0);
})`

// sharer is a member who shares the screen and the pages that watch it.
type sharer struct {
	name    string
	page    context.Context
	camera  bool // has a camera, which must come back after the share
	viewers map[string]context.Context
}

// shareAndStop has s share the screen until every viewer decodes it in
// s's tile, then stop: a camera comes back, and without one the tile
// goes back to the name card.
func shareAndStop(t *testing.T, s sharer) {
	t.Helper()
	id, err := chromedp.Run(s.page, chromedp.Evaluate[string](`window.openConsult.state.me`))
	if err != nil || id == "" {
		t.Fatalf("%s's member id %q: %v", s.name, id, err)
	}
	member := jsString(id)
	do(t, s.page, s.name+" shares the screen", chromedp.Click(chromedp.CSS("#share")))
	waitTrue(t, s.page, s.name+"'s share button pressed", `document.getElementById("share").getAttribute("aria-pressed") === "true"`, 15*time.Second)
	for name, ctx := range s.viewers {
		waitTrue(t, ctx, name+" decodes "+s.name+"'s screen", fmt.Sprintf("%s(%s, true)", tileDecodesJS, member), 60*time.Second)
	}
	do(t, s.page, s.name+" stops sharing", chromedp.Click(chromedp.CSS("#share")))
	waitTrue(t, s.page, s.name+"'s share button released", `document.getElementById("share").getAttribute("aria-pressed") === "false"`, 15*time.Second)
	for name, ctx := range s.viewers {
		if s.camera {
			waitTrue(t, ctx, name+" decodes "+s.name+"'s camera again", fmt.Sprintf("%s(%s, false)", tileDecodesJS, member), 60*time.Second)
		} else {
			waitTrue(t, ctx, s.name+"'s picture leaves "+name+"'s tile", fmt.Sprintf("%s(%s)", tileWithoutPictureJS, member), 30*time.Second)
		}
	}
}

// TestBrowserScreenShareThroughTheMediaServer runs a consult of three on
// the media server, one member without a camera: that member shares the
// screen, which reaches the others as a new publication and leaves their
// tiles when the share stops, twice; then a member with a camera shares,
// and the camera comes back after.
func TestBrowserScreenShareThroughTheMediaServer(t *testing.T) {
	d, doc := startConsult(t, "dr.screen", false, "-sfu-min-participants", "2")
	defer d.stop()
	second := extraLink(t, doc, "family")
	first := patientLink(t, doc)
	patient := joinAsGuest(t, first, "Pat Example")
	admit(t, doc, "Pat Example")
	nocam := joinWithoutCamera(t, d, second, "Nico Nocamera", true)
	admit(t, doc, "Nico Nocamera")
	waitTrue(t, nocam, "the member without camera decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" decodes the other camera through the media server", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
	}

	for _, s := range []sharer{
		{name: "Nico", page: nocam, viewers: map[string]context.Context{"clinician": doc, "patient": patient}},
		{name: "Nico, again", page: nocam, viewers: map[string]context.Context{"clinician": doc, "patient": patient}},
		{name: "Pat", page: patient, camera: true, viewers: map[string]context.Context{"clinician": doc, "Nico": nocam}},
	} {
		shareAndStop(t, s)
	}
	// Everything went through the media server.
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient, "Nico": nocam} {
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.openConsult.peers().length`)); err != nil || n != 0 {
			t.Errorf("%s has %d direct connections (%v), want none", name, n, err)
		}
	}
}

// TestBrowserScreenSharePeerToPeer does the same in a consult of two on a
// direct connection: the patient, without a camera, shares twice, then
// the clinician, whose camera comes back.
func TestBrowserScreenSharePeerToPeer(t *testing.T) {
	d, doc := startConsult(t, "dr.direct", false)
	defer d.stop()
	link := patientLink(t, doc)
	patient := joinWithoutCamera(t, d, link, "Nico Nocamera", true)
	admit(t, doc, "Nico Nocamera")
	waitTrue(t, patient, "the patient decodes the clinician directly", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, doc, "the clinician's direct connection is up", `window.openConsult.peers().some((pc) => pc.connectionState === "connected")`, 30*time.Second)

	for _, s := range []sharer{
		{name: "Nico", page: patient, viewers: map[string]context.Context{"clinician": doc}},
		{name: "Nico, again", page: patient, viewers: map[string]context.Context{"clinician": doc}},
		{name: "the clinician", page: doc, camera: true, viewers: map[string]context.Context{"patient": patient}},
	} {
		shareAndStop(t, s)
	}
	if onServer, _ := chromedp.Run(doc, chromedp.Evaluate[bool](`window.openConsult.mediaServer() !== null`)); onServer {
		t.Error("a consult of two went to the media server")
	}
}

// TestBrowserScreenShareMovesToTheMediaServer has a member without a
// camera share the screen in a consult of two, then a third member join:
// the screen goes on through the media server to both others, and leaves
// their tiles when the share stops.
func TestBrowserScreenShareMovesToTheMediaServer(t *testing.T) {
	d, doc := startConsult(t, "dr.move", false)
	defer d.stop()
	second := extraLink(t, doc, "family")
	nocam, _ := joinWithoutDevices(t, d, doc, "Nico Nocamera", true, "")
	id, err := chromedp.Run(nocam, chromedp.Evaluate[string](`window.openConsult.state.me`))
	if err != nil || id == "" {
		t.Fatalf("Nico's member id %q: %v", id, err)
	}
	screen := fmt.Sprintf("%s(%s, true)", tileDecodesJS, jsString(id))
	do(t, nocam, "Nico shares the screen", chromedp.Click(chromedp.CSS("#share")))
	waitTrue(t, doc, "the clinician decodes Nico's screen directly", screen, 60*time.Second)

	patient := joinAsGuest(t, second, "Pat Example")
	admit(t, doc, "Pat Example")
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" is on the media server only", `window.openConsult.mediaServer() !== null && window.openConsult.peers().length === 0`, 90*time.Second)
		waitTrue(t, ctx, name+" decodes Nico's screen through the media server", screen, 60*time.Second)
	}
	do(t, nocam, "Nico stops sharing", chromedp.Click(chromedp.CSS("#share")))
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, "Nico's picture leaves "+name+"'s tile", fmt.Sprintf("%s(%s)", tileWithoutPictureJS, jsString(id)), 30*time.Second)
	}
}
