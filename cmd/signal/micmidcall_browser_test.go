package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// tileSoundJS returns, for the audio track of member's tile, what one of
// the page's connections (the media server's with viaServer, else a direct
// one) received of it in a second: [packets, audio energy], or null while
// no such track arrives on such a connection.
const tileSoundJS = `((member, viaServer) => (async () => {
  const fig = document.querySelector('figure.tile[data-member="' + member + '"]');
  const v = fig && fig.querySelector("video");
  const track = v && v.srcObject && v.srcObject.getAudioTracks().find((t) => t.readyState === "live");
  const server = window.openConsult.mediaServer();
  const pcs = viaServer ? (server ? [server] : []) : window.openConsult.peers();
  const receiver = track && pcs.flatMap((pc) => pc.getReceivers()).find((r) => r.track === track);
  if (!receiver) return null;
  const inbound = async () => {
    for (const s of (await receiver.getStats()).values()) if (s.type === "inbound-rtp" && s.kind === "audio") return s;
    return null;
  };
  const before = await inbound();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = await inbound();
  if (!before || !after) return null;
  return [(after.packetsReceived || 0) - (before.packetsReceived || 0), (after.totalAudioEnergy || 0) - (before.totalAudioEnergy || 0)];
})())`

// pickMicrophoneJS picks the first microphone in the device chooser.
const pickMicrophoneJS = `(() => {
  const s = document.getElementById("mic-select");
  const o = [...s.options].find((o) => o.value !== "none");
  if (!o) return false;
  s.value = o.value;
  s.dispatchEvent(new Event("change"));
  return true;
})()`

// muteButtonJS is true when the mute button offers to mute (on) or to
// turn the microphone on (off).
const muteButtonJS = `((on) => document.getElementById("mute").getAttribute("aria-pressed") === String(!on))`

// TestBrowserMicrophoneTurnedOnMidCall has a member who joined without a
// microphone (the browser refused it) allow one during the call and turn
// it on, then mute and unmute it: the others receive its sound (packets
// and audio energy rising for its tile's track) through the media server
// (three members, the microphone on a section of its own) or directly
// (two), and silence while it is muted.
func TestBrowserMicrophoneTurnedOnMidCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onServer bool
		turnOn   string // JavaScript run in the member's page
	}{
		{"through the media server, with the mute button", true, `document.getElementById("mute").click(), true`},
		{"peer to peer, with the device chooser", false, pickMicrophoneJS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.onServer {
				extra = []string{"-sfu-min-participants", "2"}
			}
			d, doc := startConsult(t, "dr.mic", false, extra...)
			defer d.stop()
			var third string
			if tc.onServer {
				third = extraLink(t, doc, "family")
			}
			nomic, viewers := joinWithoutDevices(t, d, doc, "Mia Nomic", false, third)
			waitTrue(t, nomic, "Mia's mute button offers to turn the microphone on", muteButtonJS+`(false)`, 5*time.Second)
			mia := memberID(t, nomic, "Mia")

			do(t, nomic, "Mia allows her microphone and turns it on", chromedp.Evaluate[chromedp.Void](`window.micAllowed = true`), chromedp.Evaluate[chromedp.Void](tc.turnOn))
			waitTrue(t, nomic, "Mia's mute button offers to mute", muteButtonJS+`(true)`, 15*time.Second)
			hearsMia(t, viewers, mia, tc.onServer, true)
			if tc.onServer {
				for name, ctx := range viewers {
					waitTrue(t, ctx, name+" is on the media server only", `window.openConsult.peers().length === 0`, 30*time.Second)
				}
			}
			do(t, nomic, "Mia mutes", chromedp.Click(chromedp.CSS("#mute")))
			waitTrue(t, nomic, "Mia's mute button offers to unmute", muteButtonJS+`(false)`, 5*time.Second)
			hearsMia(t, viewers, mia, tc.onServer, false)
			do(t, nomic, "Mia unmutes", chromedp.Click(chromedp.CSS("#mute")))
			hearsMia(t, viewers, mia, tc.onServer, true)
			if n, err := chromedp.Run(nomic, chromedp.Evaluate[int](`window.openConsult.state.local.getAudioTracks().length`)); err != nil || n != 1 {
				t.Errorf("Mia has %d microphone tracks (%v), want 1", n, err)
			}
		})
	}
}

// hearsMia waits until every viewer receives Mia's sound in her tile
// through the connection named (packets and audio energy rising), or,
// muted, packets of silence.
func hearsMia(t *testing.T, viewers map[string]context.Context, mia string, viaServer, sound bool) {
	t.Helper()
	for name, ctx := range viewers {
		what := fmt.Sprintf("%s receives Mia's sound (%t) through the media server (%t)", name, sound, viaServer)
		check := fmt.Sprintf("%s(%s, %t).then((r) => !!r && r[0] > 10 && (r[1] > 1e-6) === %t)", tileSoundJS, mia, viaServer, sound)
		waitTrue(t, ctx, what, check, 60*time.Second)
	}
}
