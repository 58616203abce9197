package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/recording/webm"
)

// recordedWebM muxes d of a VP8 test pattern and Opus audio as the
// recorder does.
func recordedWebM(t *testing.T, d time.Duration) []byte {
	t.Helper()
	video := mediatest.Video(t, "vp8", d, 30, 60)
	m, err := webm.NewMuxer([]webm.Track{{Kind: webm.Audio, CodecID: webm.CodecOpus, SampleRate: 48000, Channels: 2},
		{Kind: webm.Video, CodecID: webm.CodecVP8, Width: 320, Height: 240}})
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	vi := 0
	for a := int64(0); a < d.Milliseconds(); a += 20 {
		for ; vi < len(video) && int64(vi)*1000/30 <= a; vi++ {
			c, _ := m.Write(2, int64(vi)*1000/30, video[vi].Key, video[vi].Data)
			body = append(body, c...)
		}
		c, _ := m.Write(1, a, true, mediatest.OpusSilence)
		body = append(body, c...)
	}
	body = append(body, m.Cues()...)
	return append(m.Header(true), body...)
}

// TestBrowserRecordPagePlaysAndSeeksARecording: Chromium plays a stored
// recording from the record page, knows its length, and seeks into it
// (byte ranges of the decrypted segments); the page passes axe-core.
func TestBrowserRecordPagePlaysAndSeeksARecording(t *testing.T) {
	axe := browsertest.LoadAxe(t)
	dir := t.TempDir()
	d := startDev(t, dir)
	t.Cleanup(func() { d.stop() })
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.replay", "a long clinician passphrase")
	doc := browsertest.New(t)
	browserSignIn(t, doc, d, "dr.replay", "a long clinician passphrase")
	do(t, doc, "start consult",
		chromedp.WaitVisible(chromedp.CSS("#new-consult-button")),
		chromedp.Click(chromedp.CSS("#new-consult-button")),
		chromedp.WaitVisible(chromedp.CSS("#links-title")),
	)
	path, err := chromedp.Run(doc, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	consultID := strings.TrimPrefix(path, "/consults/")
	storedRecordingAt(t, dir, consultID, "r_play", recordedWebM(t, 8*time.Second), time.Now().UTC().Add(-time.Hour))

	do(t, doc, "record page", chromedp.Navigate(d.public+"/consults/"+consultID+"/record"), chromedp.WaitVisible(chromedp.CSS("video")))
	axe.Check(t, doc, "record")
	do(t, doc, "play", chromedp.Evaluate[chromedp.Void](`(() => { const v = document.querySelector("video"); v.muted = true; v.play(); })()`))
	waitTrue(t, doc, "playback advances", `document.querySelector("video").currentTime > 1`, 20*time.Second)
	waitTrue(t, doc, "the length is known", `Math.abs(document.querySelector("video").duration - 8) < 0.3`, 5*time.Second)
	do(t, doc, "seek", chromedp.Evaluate[chromedp.Void](`document.querySelector("video").currentTime = 6`))
	waitTrue(t, doc, "playback goes on after the seek", `(() => { const v = document.querySelector("video"); return !v.seeking && v.currentTime > 6.3 && !v.error; })()`, 20*time.Second)
	frames, err := chromedp.Run(doc, chromedp.Evaluate[int](`document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames`))
	if err != nil || frames == 0 {
		t.Fatalf("decoded %d frames, %v", frames, err)
	}
}
