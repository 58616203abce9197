package media

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// nodeOffer is the offer the node makes to a member who receives the
// publications of publishers others, each with a camera and a microphone.
func nodeOffer(t *testing.T, publishers int) string {
	t.Helper()
	m, err := newMetrics(nil, func() Load { return Load{} })
	if err != nil {
		t.Fatal(err)
	}
	var est, rtx sync.Map
	api, err := newAPI(webrtc.SettingEngine{}, &est, &rtx, m, newRTCPScheduler(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range publishers {
		for _, c := range []webrtc.RTPCodecCapability{{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, {MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}} {
			tr, err := webrtc.NewTrackLocalStaticRTP(c, fmt.Sprintf("%s-%d", c.MimeType, i), fmt.Sprintf("m%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
				t.Fatal(err)
			}
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// TestBrowserSDPSize measures the node's offer, Chromium's answer to it and
// Chromium's next offer (an ICE restart) for rooms of growing size.
func TestBrowserSDPSize(t *testing.T) {
	ctx := browsertest.New(t)
	for _, n := range []int{1, 12, 24, 199} {
		offer := nodeOffer(t, n)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sizes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](fmt.Sprintf(`(async () => {
			const pc = new RTCPeerConnection();
			await pc.setRemoteDescription({type: "offer", sdp: %q});
			const answer = await pc.createAnswer();
			await pc.setLocalDescription(answer);
			const restart = await pc.createOffer({iceRestart: true});
			pc.close();
			const kind = (sdp, k) => sdp.split("\r\nm=").filter((m) => m.startsWith(k)).reduce((n, m) => n + m.length + 4, 0);
			return [answer.sdp.length, restart.sdp.length, kind(answer.sdp, "audio"), kind(answer.sdp, "video"), kind(restart.sdp, "audio"), kind(restart.sdp, "video")];
		})()`, offer), chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("publishers=%d sections=%d node offer=%d chromium answer=%d (audio %d, video %d a section) chromium restart offer=%d (audio %d, video %d a section)",
			n, 2*n, len(offer), sizes[0], sizes[2]/n, sizes[3]/n, sizes[1], sizes[4]/n, sizes[5]/n)
	}
}
