package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// recordRemoteDescriptions has every page the tab opens keep, on each
// RTCPeerConnection, the descriptions set as remote, in order.
const recordRemoteDescriptions = `(() => {
  const real = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d) {
    (this.remoteSeen ||= []).push({ type: d?.type, sdp: d?.sdp || "" });
    return real.apply(this, arguments);
  };
})()`

// firstAnswerFromServer returns, for the tab's media server connection,
// the video sections of the server's first answer that carry a member's
// stream, and the offers the server sent.
const firstAnswerFromServer = `(() => {
  const seen = window.openConsult.mediaServer()?.remoteSeen || [];
  const answer = seen.find((d) => d.type === "answer");
  const video = answer ? answer.sdp.split("\r\nm=").slice(1).filter((m) => m.startsWith("video") && /a=msid:\S+\//.test(m)).length : -1;
  return [video, seen.filter((d) => d.type === "offer").length];
})()`

// TestBrowserViewerGetsTheRoomsVideoInTheServersFirstAnswer runs a consult
// on the media server from its second member, then admits a third who
// joins without a camera: the server's answer to that member's first
// offer already carries both others' video, which it decodes.
func TestBrowserViewerGetsTheRoomsVideoInTheServersFirstAnswer(t *testing.T) {
	d, doc := startConsult(t, "dr.view", false, "-sfu-min-participants", "2")
	defer d.stop()
	second := extraLink(t, doc, "family")
	first, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.querySelector(".link-url").value`))
	if err != nil || !strings.Contains(first, "/j/") {
		t.Fatalf("patient link %q: %v", first, err)
	}
	patient := joinAsGuest(t, first, "Pat Example")
	admit(t, doc, "Pat Example")
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" decodes the other through the media server", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
	}

	viewer := browsertest.New(t)
	do(t, viewer, "record remote descriptions", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordRemoteDescriptions})
		return err
	}))
	do(t, viewer, "viewer opens the link", chromedp.Navigate(second), chromedp.WaitVisible(chromedp.CSS("#name")))
	// The device check ticks "audio only" itself when there is no camera:
	// tick it once the check is done.
	waitTrue(t, viewer, "the viewer's devices checked", `document.getElementById("preview").videoWidth > 0`, 15*time.Second)
	do(t, viewer, "viewer joins without camera",
		chromedp.Click(chromedp.CSS("#audio-only")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Vic Viewer"),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	if sends, err := chromedp.Run(viewer, chromedp.Evaluate[int](`window.openConsult.state.local.getVideoTracks().length`)); err != nil || sends != 0 {
		t.Fatalf("the viewer has %d video tracks (%v), want none", sends, err)
	}
	admit(t, doc, "Vic Viewer")
	waitTrue(t, viewer, "viewer decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	got, err := chromedp.Run(viewer, chromedp.Evaluate[[]int](firstAnswerFromServer))
	if err != nil || len(got) != 2 {
		t.Fatalf("first answer %v: %v", got, err)
	}
	if got[0] != 2 {
		t.Errorf("the server's first answer to the viewer carried %d videos, want both others'", got[0])
	}
	t.Logf("server offers to the viewer by its first frames: %d (its own audio's receivers come in one)", got[1])
	// The sections the viewer did not need carry nothing to the others:
	// each still decodes just the one other publisher's video.
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("figure.tile:not(.self) video")].filter((v) => v.videoWidth > 0).length`))
		if err != nil || n != 1 {
			t.Errorf("%s shows %d videos (%v), want the one publisher's", name, n, err)
		}
	}
	// The server's later offers find the viewer's sections in order: the
	// patient leaves, and the clinician's video goes on.
	do(t, patient, "patient leaves", chromedp.Click(chromedp.CSS("#leave")))
	waitTrue(t, viewer, "the patient's tile goes", `document.querySelectorAll("figure.tile:not(.self)").length === 1`, 30*time.Second)
	waitTrue(t, viewer, "viewer's server connection settled", `window.openConsult.mediaServer()?.signalingState === "stable"`, 30*time.Second)
	frames := `(async () => {
  let n = 0;
  for (const s of (await window.openConsult.mediaServer().getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "video") n += s.framesDecoded || 0;
  return n;
})()`
	before, err := chromedp.Run(viewer, chromedp.Evaluate[int](frames, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	waitTrue(t, viewer, "viewer still decodes the clinician", fmt.Sprintf(`%s.then((n) => n > %d + 30)`, frames, before), 30*time.Second)
}
