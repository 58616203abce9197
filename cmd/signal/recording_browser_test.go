package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/recording"
	"github.com/openconsult/openconsult/signaling"
)

// recorderSpy watches what the live consult asks of the server's own
// recorder, the recording service, and passes every request on to it.
type recorderSpy struct {
	next signaling.Recordings // the server's recorder

	mu     sync.Mutex
	starts []recording.StartRequest
	stops  []string
}

func (s *recorderSpy) Start(ctx context.Context, req recording.StartRequest) (recording.Active, error) {
	s.mu.Lock()
	s.starts = append(s.starts, req)
	s.mu.Unlock()
	a, err := s.next.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return &activeSpy{spy: s, Active: a}, nil
}

func (s *recorderSpy) seen() ([]recording.StartRequest, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recording.StartRequest(nil), s.starts...), append([]string(nil), s.stops...)
}

// activeSpy is the running recording as the recorderSpy hands it out.
type activeSpy struct {
	spy *recorderSpy
	recording.Active
}

func (a *activeSpy) Stop(ctx context.Context, reason string) error {
	a.spy.mu.Lock()
	a.spy.stops = append(a.spy.stops, reason)
	a.spy.mu.Unlock()
	return a.Active.Stop(ctx, reason)
}

// recordingFlags: administrators may watch recordings, kept 90 days, as
// the consent question says.
var recordingFlags = []string{"-recording-viewer", "admin", "-recording-retention", "2160h"}

// watchRecorder puts spy between the live consult and the server's own
// recorder. A server without one offers no recording.
func watchRecorder(spy *recorderSpy) func(*settings) {
	return func(s *settings) {
		s.roomHook = func(deps *signaling.RoomDeps) {
			if deps.Recordings != nil {
				spy.next = deps.Recordings
				deps.Recordings = spy
			}
		}
	}
}

// recordingShown is true when the page shows the recording indicator and
// the screen-reader announcement of its start.
const recordingShown = `(() => {
  const ind = document.getElementById("rec-indicator");
  return !!ind && !ind.hidden && ind.dataset.state === "on" && ind.checkVisibility() &&
    ind.textContent.includes("Recording") &&
    document.getElementById("rec-announce").textContent.includes("Recording started");
})()`

// pictureGapWatch starts noting, in window.__longestGap, the longest time
// the first remote tile had no picture.
const pictureGapWatch = `(() => {
  window.__longestGap = 0;
  let since = null;
  setInterval(() => {
    const v = document.querySelector("figure.tile:not(.self) video");
    const showing = v && v.readyState >= 2 && v.videoWidth > 0;
    if (showing) since = null;
    else if (since === null) since = performance.now();
    else window.__longestGap = Math.max(window.__longestGap, performance.now() - since);
  }, 50);
  return true;
})()`

const recordingHidden = `document.getElementById("rec-indicator").hidden`

// TestBrowserRecordingWithConsentMovesTheConsultAndBack runs a consult of a
// clinician and a patient peer to peer; the clinician asks to record, the
// patient reads the consent question (who may watch, how long it is kept,
// no end-to-end encryption while recorded) and agrees; the consult moves
// to the media node, both pages show the recording indicator, and the
// recorder is started with both consents. A family member who arrives
// meanwhile is asked in the waiting room, declines, and cannot be let in.
// The clinician stops the recording: the indicator goes and the consult
// moves back to peer to peer. A second request that the patient dismisses
// with Escape records nothing. axe-core checks the call page with the
// question open, while recording, and the waiting room with its question.
func TestBrowserRecordingWithConsentMovesTheConsultAndBack(t *testing.T) {
	axe := browsertest.LoadAxe(t)
	spy := &recorderSpy{}
	d, doc := startConsultAdjusted(t, "dr.record", false, watchRecorder(spy), recordingFlags...)
	defer d.stop()
	// A second link, for a family member, before anyone joins.
	do(t, doc, "family link",
		chromedp.SetValue(chromedp.CSS("#label"), "family"),
		chromedp.Click(chromedp.CSS(`form[action$="/links"] button`)),
	)
	waitTrue(t, doc, "two links", `document.querySelectorAll(".link-url").length === 2`, 15*time.Second)
	links, err := chromedp.Run(doc, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".link-url")].map(i => i.value)`))
	if err != nil || len(links) != 2 || !strings.Contains(links[1], "/j/") {
		t.Fatalf("links %q: %v", links, err)
	}
	patient := joinAsGuest(t, links[0], "Pat Example")
	if shown, _ := chromedp.Run(patient, chromedp.Evaluate[bool](`!!document.getElementById("record")`)); shown {
		t.Fatal("the patient's page has a Record button")
	}
	admit(t, doc, "Pat Example")
	waitTrue(t, doc, "clinician decodes the patient peer to peer", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician peer to peer", remoteVideoDecoding, 90*time.Second)

	// The clinician asks; the patient is asked, with the focus on "Do not
	// record".
	waitTrue(t, doc, "the Record button", `document.getElementById("record").checkVisibility()`, 10*time.Second)
	do(t, doc, "ask to record", chromedp.Click(chromedp.CSS("#record")))
	waitTrue(t, patient, "the consent question", `document.getElementById("rec-dialog").open && document.activeElement.id === "rec-decline"`, 15*time.Second)
	question, err := chromedp.Run(patient, chromedp.Evaluate[string](`document.getElementById("rec-dialog").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"administrators", "90 days", "end-to-end encrypted", "I agree to be recorded"} {
		if !strings.Contains(question, want) {
			t.Errorf("the consent question lacks %q: %s", want, question)
		}
	}
	axe.Check(t, patient, "call with the recording question")
	if starts, _ := spy.seen(); len(starts) != 0 {
		t.Fatal("the recorder started before the patient agreed")
	}

	// The clinician's page notes the longest stretch in which the
	// patient's tile had no picture while the consult moves.
	if _, err := chromedp.Run(doc, chromedp.Evaluate[bool](pictureGapWatch)); err != nil {
		t.Fatal(err)
	}
	agreed := time.Now()
	do(t, patient, "agree", chromedp.Click(chromedp.CSS("#rec-agree")))
	waitTrue(t, patient, "the question closed", `!document.getElementById("rec-dialog").open`, 5*time.Second)
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" decodes the other through the media server", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
		waitTrue(t, ctx, name+" shows the recording indicator", recordingShown, 30*time.Second)
	}
	t.Logf("from the patient's yes to both indicators: %v", time.Since(agreed).Round(time.Millisecond))
	if gap, err := chromedp.Run(doc, chromedp.Evaluate[float64](`window.__longestGap`)); err == nil {
		t.Logf("longest time without the patient's picture during the move to the media node: %.0f ms", gap)
	}
	starts, _ := spy.seen()
	if len(starts) != 1 || len(starts[0].Consents) != 2 || starts[0].Node == nil || starts[0].RequestedBy == "" || starts[0].Request == "" {
		t.Fatalf("the recorder was started with %+v", starts)
	}
	waitTrue(t, doc, "the Stop recording button", `document.getElementById("record").getAttribute("aria-pressed") === "true" && document.getElementById("record").textContent.includes("Stop recording")`, 5*time.Second)
	axe.Check(t, doc, "call while recording (clinician)")
	axe.Check(t, patient, "call while recording (patient)")

	// A family member who arrives is asked in the waiting room, declines,
	// and cannot be let in while it records.
	family := joinAsGuest(t, links[1], "Fay Family")
	waitTrue(t, family, "the waiting room's consent question", `document.getElementById("rec-dialog").open && document.getElementById("rec-title").textContent.includes("is being recorded")`, 15*time.Second)
	axe.Check(t, family, "waiting room with the recording question")
	do(t, family, "decline", chromedp.Click(chromedp.CSS("#rec-decline")))
	waitTrue(t, doc, "the waiting room shows the answer", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Fay Family") && li.textContent.includes("did not agree"))`, 15*time.Second)
	admit(t, doc, "Fay Family")
	waitTrue(t, doc, "the clinician is told why not", `document.getElementById("status").textContent.includes("has not agreed to be recorded")`, 15*time.Second)
	if in, _ := chromedp.Run(family, chromedp.Evaluate[bool](`window.openConsult.state.admitted`)); in {
		t.Fatal("a member who declined was let into the recorded consult")
	}

	// The clinician stops: the indicator goes, and the consult moves back.
	do(t, doc, "stop recording", chromedp.Click(chromedp.CSS("#record")))
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" hides the indicator", recordingHidden+` && document.getElementById("rec-announce").textContent === "Recording stopped."`, 30*time.Second)
		waitTrue(t, ctx, name+" is back peer to peer", `window.openConsult.mediaServer() === null && window.openConsult.state.route === "p2p"`, 90*time.Second)
		waitTrue(t, ctx, name+" decodes the other directly", remoteVideoDecoding, 90*time.Second)
	}
	if _, stops := spy.seen(); len(stops) != 1 || stops[0] != signaling.StopRequested {
		t.Fatalf("Active.Stop calls: %v", stops)
	}

	// Escape answers no: nothing is recorded and nobody is named.
	do(t, doc, "ask again", chromedp.Click(chromedp.CSS("#record")))
	waitTrue(t, patient, "the question again", `document.getElementById("rec-dialog").open`, 15*time.Second)
	do(t, patient, "Escape", chromedp.KeyEvent(kb.Escape))
	waitTrue(t, doc, "the clinician hears a participant declined", `document.getElementById("rec-announce").textContent.includes("a participant did not agree")`, 15*time.Second)
	waitTrue(t, patient, "the question closed", `!document.getElementById("rec-dialog").open`, 5*time.Second)
	if starts, _ := spy.seen(); len(starts) != 1 {
		t.Fatalf("a declined request started the recorder: %d starts", len(starts))
	}
	if onServer, _ := chromedp.Run(doc, chromedp.Evaluate[bool](`window.openConsult.mediaServer() !== null`)); onServer {
		t.Error("a declined request moved the consult to the media server")
	}
}
