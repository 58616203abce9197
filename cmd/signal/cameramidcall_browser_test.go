package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// pickCameraJS picks, in the device chooser, the first camera or, with
// none, the "no camera" entry, as a user would.
const pickCameraJS = `((none) => {
  const s = document.getElementById("camera-select");
  const o = [...s.options].find((o) => (o.value === "none") === none);
  if (!o) return false;
  s.value = o.value;
  s.dispatchEvent(new Event("change"));
  return true;
})`

// selfViewJS is true when the tab's own tile shows its camera (on) or the
// name card (off).
const selfViewJS = `((on) => {
  const fig = document.querySelector("figure.tile.self");
  const v = fig && fig.querySelector("video");
  return !!v && fig.classList.contains("no-video") === !on && (!on || v.videoWidth > 0);
})`

// cameraButtonJS is true when the camera button offers to stop the video
// (on) or to start it (off).
const cameraButtonJS = `((on) => document.getElementById("camera").getAttribute("aria-pressed") === String(!on))`

// latecomer is a member who joined without a camera and the pages that
// watch its tile.
type latecomer struct {
	page    context.Context
	member  string // its member id, as a JavaScript string
	viewers map[string]context.Context
}

// cameraStep is one thing the member does with its camera or screen, and
// what the viewers then see in its tile: the camera's picture, the
// screen's, or the name card.
type cameraStep struct {
	what   string
	action string // JavaScript run in the member's page
	shows  string // "camera", "screen" or "card"
}

var cameraSteps = []cameraStep{
	{"turns the camera on with the camera button", `document.getElementById("camera").click(), true`, "camera"},
	{"turns it off with the camera button", `document.getElementById("camera").click(), true`, "card"},
	{"picks a camera in the device chooser", pickCameraJS + `(false)`, "camera"},
	{"picks no camera in the device chooser", pickCameraJS + `(true)`, "card"},
	{"shares the screen", `document.getElementById("share").click(), true`, "screen"},
	{"turns the camera on during the share", `document.getElementById("camera").click(), true`, "screen"},
	{"stops sharing", `document.getElementById("share").click(), true`, "camera"},
	{"turns the camera off", `document.getElementById("camera").click(), true`, "card"},
}

// runCameraSteps has m go through cameraSteps, each viewer checking its
// tile after each step.
func runCameraSteps(t *testing.T, m latecomer) {
	t.Helper()
	for _, s := range cameraSteps {
		do(t, m.page, "the member "+s.what, chromedp.Evaluate[chromedp.Void](s.action))
		on := s.shows == "camera" || strings.Contains(s.what, "during")
		waitTrue(t, m.page, "the camera button after the member "+s.what, fmt.Sprintf("%s(%t)", cameraButtonJS, on), 15*time.Second)
		waitTrue(t, m.page, "the self view after the member "+s.what, fmt.Sprintf("%s(%t)", selfViewJS, on), 15*time.Second)
		for name, ctx := range m.viewers {
			what := fmt.Sprintf("after the member %s, %s's tile shows the %s", s.what, name, s.shows)
			switch s.shows {
			case "card":
				waitTrue(t, ctx, what, fmt.Sprintf("%s(%s)", tileWithoutPictureJS, m.member), 30*time.Second)
			default:
				waitTrue(t, ctx, what, fmt.Sprintf("%s(%s, %t)", tileDecodesJS, m.member, s.shows == "screen"), 60*time.Second)
			}
		}
	}
	if seen, err := chromedp.Run(m.page, chromedp.Evaluate[int](`window.openConsult.state.local.getVideoTracks().length`)); err != nil || seen != 0 {
		t.Errorf("the member keeps %d camera tracks after turning it off (%v), want none: its light stays on", seen, err)
	}
}

// TestBrowserCameraTurnedOnMidCall has a member who joined without a
// camera turn one on during the call, with the camera button and with the
// device chooser, and off again, and during a screen share: the others
// decode its camera, see the name card once it is off, and the camera
// once the share stops. Over the media server (three members) and peer to
// peer (two).
func TestBrowserCameraTurnedOnMidCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onServer bool
	}{
		{"through the media server", true},
		{"peer to peer", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.onServer {
				extra = []string{"-sfu-min-participants", "2"}
			}
			d, doc := startConsult(t, "dr.camera", false, extra...)
			defer d.stop()
			var third string
			if tc.onServer {
				third = extraLink(t, doc, "family")
			}
			nocam, viewers := joinWithoutDevices(t, d, doc, "Nico Nocamera", true, third)
			waitTrue(t, nocam, "Nico's camera button offers to start the video", cameraButtonJS+`(false)`, 5*time.Second)
			id, err := chromedp.Run(nocam, chromedp.Evaluate[string](`window.openConsult.state.me`))
			if err != nil || id == "" {
				t.Fatalf("Nico's member id %q: %v", id, err)
			}
			runCameraSteps(t, latecomer{page: nocam, member: jsString(id), viewers: viewers})
			onServer, err := chromedp.Run(doc, chromedp.Evaluate[bool](`window.openConsult.mediaServer() !== null && window.openConsult.peers().length === 0`))
			if err != nil || onServer != tc.onServer {
				t.Errorf("the clinician is only on the media server: %t (%v), want %t", onServer, err, tc.onServer)
			}
		})
	}
}

// TestBrowserCameraTurnedOnMidCallMovesToTheMediaServer has a member who
// joined without a camera turn one on in a consult of two, then a third
// member join: the camera goes on through the media server, on a section
// of its own, to both others, and turning it off there leaves the name
// card in their tiles.
func TestBrowserCameraTurnedOnMidCallMovesToTheMediaServer(t *testing.T) {
	d, doc := startConsult(t, "dr.latecam", false)
	defer d.stop()
	second := extraLink(t, doc, "family")
	nocam, _ := joinWithoutDevices(t, d, doc, "Nico Nocamera", true, "")
	nico := memberID(t, nocam, "Nico")
	camera := fmt.Sprintf("%s(%s, false)", tileDecodesJS, nico)
	do(t, nocam, "Nico turns his camera on", chromedp.Click(chromedp.CSS("#camera")))
	waitTrue(t, doc, "the clinician decodes Nico's camera directly", camera, 60*time.Second)

	patient := joinAsGuest(t, second, "Pat Example")
	admit(t, doc, "Pat Example")
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" is on the media server only", `window.openConsult.mediaServer() !== null && window.openConsult.peers().length === 0`, 90*time.Second)
		waitTrue(t, ctx, name+" decodes Nico's camera through the media server", camera, 60*time.Second)
	}
	do(t, nocam, "Nico turns his camera off", chromedp.Click(chromedp.CSS("#camera")))
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, "Nico's picture leaves "+name+"'s tile", fmt.Sprintf("%s(%s)", tileWithoutPictureJS, nico), 30*time.Second)
	}
}
