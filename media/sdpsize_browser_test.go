package media

import (
	"context"
	"fmt"
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
	pc := nodePeer(t)
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

// The node's offer, Chromium's answer to it and Chromium's next offer (an
// ICE restart), for rooms of growing size: the node's offer and the answer
// list only the node's codecs, a video section of the answer some 1.3 kB
// (3.1 kB with pion's default codecs). Chromium's own offers list all its
// codecs whatever was negotiated; signaling's MaxSDPBytes is sized for
// them.
func TestBrowserSDPSize(t *testing.T) {
	ctx := browsertest.New(t)
	for _, n := range []int{1, 12, 48} {
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
		if video := sizes[3] / n; video > 2000 {
			t.Errorf("a video section of Chromium's answer takes %d bytes, want under 2,000", video)
		}
		if per := len(offer) / n; per > 3000 {
			t.Errorf("the node's offer takes %d bytes a publisher, want under 3,000", per)
		}
	}
}
