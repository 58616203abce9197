package sdpneg_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// chromiumMember is a real Chromium tab, with fake camera and microphone.
type chromiumMember struct {
	ctx context.Context
}

// chromiumSteps are the tab's offers by step.
var chromiumSteps = map[string]string{
	stepJoin: `
		local = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 640, height: 360}});
		window.local = local;
		pc = window.pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
		pc.addTransceiver(local.getAudioTracks()[0], {direction: "sendrecv", streams: [local]});
		pc.addTransceiver(local.getVideoTracks()[0], {direction: "sendrecv", streams: [local], sendEncodings: [
			{rid: "q", scaleResolutionDownBy: 4}, {rid: "h", scaleResolutionDownBy: 2}, {rid: "f"}]});
		pc.addTransceiver("audio", {direction: "recvonly"});
		pc.addTransceiver("video", {direction: "recvonly"});`,
	stepStop: `pc.getTransceivers()[3].stop();`,
	stepDrop: `pc.getTransceivers().find((tr) => tr.mid === "4").stop();`,
	stepRecycle: `
		const screen = local.getVideoTracks()[0].clone();
		pc.addTransceiver(screen, {direction: "sendonly", streams: [new MediaStream([screen])]});`,
}

// eval runs an async script body in the tab, with pc and local bound
// once the join step made them, and returns its result.
func eval[T any](t *testing.T, c chromiumMember, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[T](`(async () => { let pc = window.pc; let local = window.local; `+js+` })()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return out
}

func (c chromiumMember) record(t *testing.T, name, sdp string) string {
	t.Helper()
	if *updateFixtures {
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(sdp), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sdp
}

func (c chromiumMember) offer(t *testing.T, step string) string {
	t.Helper()
	sdp := eval[string](t, c, chromiumSteps[step]+`
		pc = window.pc;
		await pc.setLocalDescription(await pc.createOffer());
		return pc.localDescription.sdp;`)
	return c.record(t, "chromium-"+step+"-offer.sdp", sdp)
}

func (c chromiumMember) answer(t *testing.T, step, offer string) string {
	t.Helper()
	sdp := eval[string](t, c, fmt.Sprintf(`
		await pc.setRemoteDescription({type: "offer", sdp: %q});
		await pc.setLocalDescription(await pc.createAnswer());
		return pc.localDescription.sdp;`, offer))
	return c.record(t, "chromium-"+step+"-answer.sdp", sdp)
}

func (c chromiumMember) accept(t *testing.T, _ string, answer string) []string {
	t.Helper()
	return eval[[]string](t, c, fmt.Sprintf(`
		await pc.setRemoteDescription({type: "answer", sdp: %q});
		return pc.getTransceivers().filter((tr) => tr.mid !== null).map((tr) => tr.mid + ":" + tr.currentDirection);`, answer))
}

// Chromium as the member: its offers parse, the node's answers and
// offers are accepted with the directions the node means, and a stopped
// m-line is recycled for a screen.
func TestBrowserChromium(t *testing.T) {
	ctx := browsertest.New(t)
	// A page of a loopback origin: a secure context, which getUserMedia
	// needs.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<!doctype html><title>member</title>"))
	}))
	t.Cleanup(srv.Close)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	chromiumScenario(t, chromiumMember{ctx: ctx})
}
