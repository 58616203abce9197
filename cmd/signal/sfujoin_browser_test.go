package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// watchServerConnection has every page the tab opens keep, on each
// RTCPeerConnection, the descriptions set as remote, in order, and the
// milliseconds from the connection's creation to the first frame of each
// video it receives.
const watchServerConnection = `(() => {
  const real = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (d) {
    (this.remoteSeen ||= []).push({ type: d?.type, sdp: d?.sdp || "" });
    return real.apply(this, arguments);
  };
  const Real = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Real {
    constructor(...args) {
      super(...args);
      const made = performance.now();
      this.firstFrames = [];
      this.addEventListener("track", ({ track }) => {
        if (track.kind !== "video") return;
        const v = document.createElement("video");
        v.muted = true;
        v.srcObject = new MediaStream([track]);
        v.requestVideoFrameCallback(() => { this.firstFrames.push(Math.round(performance.now() - made)); v.srcObject = null; });
        v.play().catch(() => {});
      });
    }
  };
})()`

// firstAnswerFromServer returns, for the tab's media server connection,
// the video and audio sections of the server's first answer that carry a
// member's stream, the offers the server sent, and the milliseconds to the
// nth video's first frame (-1 if fewer arrived).
const firstAnswerFromServer = `((n) => {
  const pc = window.openConsult.mediaServer();
  const seen = pc?.remoteSeen || [];
  const answer = seen.find((d) => d.type === "answer");
  const carrying = (kind) => answer ? answer.sdp.split("\r\nm=").slice(1).filter((m) => m.startsWith(kind) && /a=msid:\S+\//.test(m)).length : -1;
  const frames = [...(pc?.firstFrames || [])].sort((a, b) => a - b);
  return [carrying("video"), carrying("audio"), seen.filter((d) => d.type === "offer").length, frames.length >= n ? frames[n - 1] : -1];
})`

// refuseMicrophone makes the page's requests for a microphone fail as a
// refused permission does (the test browser's fake devices grant any),
// until the page sets window.micAllowed (the user allows it).
const refuseMicrophone = `(() => {
  const real = MediaDevices.prototype.getUserMedia;
  MediaDevices.prototype.getUserMedia = function (c) {
    if (c && c.audio && !window.micAllowed) return Promise.reject(new DOMException("refused", "NotAllowedError"));
    return real.call(this, c);
  };
})()`

// joinWithoutCamera opens link in a new browser whose pages watch their
// media server connection, and joins audio only; without mic, the
// browser refuses the microphone too, and the member sends nothing. Its
// pages run the extra scripts too.
func joinWithoutCamera(t *testing.T, d *devServer, link, name string, mic bool, extra ...string) context.Context {
	t.Helper()
	ctx := browsertest.New(t)
	scripts := append([]string{watchServerConnection}, extra...)
	if !mic {
		scripts = append(scripts, refuseMicrophone)
	}
	do(t, ctx, name+"'s browser", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, s := range scripts {
			if _, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: s}); err != nil {
				return err
			}
		}
		return nil
	}))
	do(t, ctx, name+" opens the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	// The device check ticks "audio only" itself when there is no camera:
	// tick it once the check is done.
	waitTrue(t, ctx, name+"'s devices checked", `document.getElementById("preview").videoWidth > 0`, 15*time.Second)
	do(t, ctx, name+" joins without camera",
		chromedp.Click(chromedp.CSS("#audio-only")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	want := 0
	if mic {
		want = 1
	}
	tracks, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[window.openConsult.state.local.getVideoTracks().length, window.openConsult.state.local.getAudioTracks().length]`))
	if err != nil || len(tracks) != 2 || tracks[0] != 0 || tracks[1] != want {
		t.Fatalf("%s sends %v video and audio tracks (%v), want 0 and %d", name, tracks, err, want)
	}
	return ctx
}

// TestBrowserViewerGetsTheRoomsVideoInTheServersFirstAnswer runs a consult
// on the media server from its second member, then admits members who
// join without a camera: the server's answer to each one's first offer
// already carries the others' media that it does not send itself, so a
// member who sends nothing gets no offer from the server at all.
func TestBrowserViewerGetsTheRoomsVideoInTheServersFirstAnswer(t *testing.T) {
	d, doc := startConsult(t, "dr.view", false, "-sfu-min-participants", "2")
	defer d.stop()
	links := map[string]string{"Vic Viewer": extraLink(t, doc, "family"), "Nia Nodevice": extraLink(t, doc, "guest")}
	first := patientLink(t, doc)
	patient := joinAsGuest(t, first, "Pat Example")
	admit(t, doc, "Pat Example")
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" decodes the other through the media server", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
	}

	viewers := []struct {
		name string
		mic  bool
		// In the server's first answer: the others' videos, and their
		// audio (none for a member who sends audio: it comes in an offer).
		video, audio int
		offers       int // the server's offers by the first frames; -1: any
	}{
		{name: "Vic Viewer", mic: true, video: 2, audio: 0, offers: -1},
		{name: "Nia Nodevice", mic: false, video: 2, audio: 3, offers: 0},
	}
	var last context.Context
	for _, v := range viewers {
		ctx := joinWithoutCamera(t, d, links[v.name], v.name, v.mic)
		admit(t, doc, v.name)
		waitTrue(t, ctx, v.name+" decodes both publishers through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](firstAnswerFromServer+`(2)`))
		if err != nil || len(got) != 4 {
			t.Fatalf("%s's first answer %v: %v", v.name, got, err)
		}
		if got[0] != v.video || got[1] != v.audio {
			t.Errorf("the server's first answer to %s carried %d videos and %d audio, want %d and %d", v.name, got[0], got[1], v.video, v.audio)
		}
		if v.offers >= 0 && got[2] != v.offers {
			t.Errorf("the server sent %s %d offers, want %d", v.name, got[2], v.offers)
		}
		t.Logf("%s: %d server offers; both videos' first frames %d ms after its server connection opened (busy machine)", v.name, got[2], got[3])
		last = ctx
	}
	// The sections the viewers did not need carry nothing to the
	// publishers: each shows just the other publisher's video.
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("figure.tile:not(.self) video")].filter((v) => v.videoWidth > 0).length`))
		if err != nil || n != 1 {
			t.Errorf("%s shows %d videos (%v), want the other publisher's", name, n, err)
		}
	}
	// The server's later offers find a viewer's sections in order: the
	// patient leaves, and the clinician's video goes on.
	do(t, patient, "patient leaves", chromedp.Click(chromedp.CSS("#leave")))
	waitTrue(t, last, "the patient's tile goes", `![...document.querySelectorAll("figure.tile figcaption")].some((c) => c.textContent.includes("Pat Example"))`, 30*time.Second)
	waitTrue(t, last, "the viewer's server connection settled", `window.openConsult.mediaServer()?.signalingState === "stable"`, 30*time.Second)
	frames := `(async () => {
  let n = 0;
  for (const s of (await window.openConsult.mediaServer().getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "video") n += s.framesDecoded || 0;
  return n;
})()`
	before, err := chromedp.Run(last, chromedp.Evaluate[int](frames, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	waitTrue(t, last, "the viewer still decodes the clinician", fmt.Sprintf(`%s.then((n) => n > %d + 30)`, frames, before), 30*time.Second)
}

// joinWithoutDevices has name join doc's consult by its patient link
// without a camera (mic: with a microphone, else without one either) and
// be admitted. With third, a further link of the consult, the patient
// Pat Example joins by it too and the member waits until it decodes both
// others through the media server; else until it decodes the clinician
// directly. It returns the member's page and the pages that watch it, by
// role.
func joinWithoutDevices(t *testing.T, d *devServer, doc context.Context, name string, mic bool, third string) (context.Context, map[string]context.Context) {
	t.Helper()
	member := joinWithoutCamera(t, d, patientLink(t, doc), name, mic)
	admit(t, doc, name)
	viewers := map[string]context.Context{"clinician": doc}
	if third == "" {
		waitTrue(t, member, name+" decodes the clinician directly", remoteVideoDecoding, 90*time.Second)
		return member, viewers
	}
	viewers["patient"] = joinAsGuest(t, third, "Pat Example")
	admit(t, doc, "Pat Example")
	waitTrue(t, member, name+" decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	return member, viewers
}
