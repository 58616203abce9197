package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sentLayersJS returns, for the page's media server connection, how many
// simulcast layers of video it encodes and the width of the smallest.
const sentLayersJS = `(async () => {
  const stats = await window.openConsult.mediaServer().getStats();
  let n = 0, w = 1 << 20;
  for (const s of stats.values()) {
    if (s.type !== "outbound-rtp" || s.kind !== "video" || !s.rid || !(s.framesEncoded > 0) || !s.frameWidth) continue;
    n++;
    w = Math.min(w, s.frameWidth);
  }
  return [n, w];
})()`

// tileWidthJS is true when the video of member's tile arrives from the
// media server at most (small) or more than (not small) width pixels wide.
const tileWidthJS = `((member, width, small) => (async () => {
  const fig = document.querySelector('figure.tile[data-member="' + member + '"]');
  const v = fig && fig.querySelector("video");
  const track = v && v.srcObject && v.srcObject.getVideoTracks().find((t) => t.readyState === "live");
  const r = track && window.openConsult.mediaServer()?.getReceivers().find((r) => r.track === track);
  if (!r) return false;
  for (const s of (await r.getStats()).values()) {
    if (s.type === "inbound-rtp" && s.frameWidth) return small ? s.frameWidth <= width : s.frameWidth > width;
  }
  return false;
})())`

// TestBrowserCameraTurnedOnMidCallSendsLayers has a member who joined
// without a camera turn one on in a consult on the media server: it goes
// there in several simulcast layers, as a camera present at join does, so
// a member showing it in a small tile gets the smallest layer while one
// showing it larger gets a larger one.
func TestBrowserCameraTurnedOnMidCallSendsLayers(t *testing.T) {
	d, doc := startConsult(t, "dr.layers", false, "-sfu-min-participants", "2")
	defer d.stop()
	second := extraLink(t, doc, "family")
	first, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.querySelector(".link-url").value`))
	if err != nil || !strings.Contains(first, "/j/") {
		t.Fatalf("patient link %q: %v", first, err)
	}
	nocam := joinWithoutCamera(t, d, first, "Nico Nocamera", true)
	admit(t, doc, "Nico Nocamera")
	patient := joinAsGuest(t, second, "Pat Example")
	admit(t, doc, "Pat Example")
	waitTrue(t, nocam, "Nico decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	nico := memberID(t, nocam, "Nico")

	do(t, nocam, "Nico turns his camera on", chromedp.Click(chromedp.CSS("#camera")))
	waitTrue(t, nocam, "Nico's camera goes to the media server in several layers", sentLayersJS+`.then(([n]) => n >= 2)`, 60*time.Second)
	sent, err := chromedp.Run(nocam, chromedp.Evaluate[[]int](sentLayersJS, chromedp.EvalAwaitPromise))
	if err != nil || len(sent) != 2 {
		t.Fatalf("Nico's layers %v: %v", sent, err)
	}
	smallest := sent[1]
	if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](`(() => { for (const f of document.querySelectorAll("figure.tile:not(.self)")) f.style.width = "120px"; document.getElementById("tiles").style.display = "block"; return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitTrue(t, patient, "the patient, with small tiles, gets Nico's smallest layer", fmt.Sprintf("%s(%s, %d, true)", tileWidthJS, nico, smallest), 60*time.Second)
	waitTrue(t, doc, "the clinician gets a larger layer of Nico's camera", fmt.Sprintf("%s(%s, %d, false)", tileWidthJS, nico, smallest), 60*time.Second)
}
