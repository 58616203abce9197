package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/recording/webm"
)

// recordedWebM muxes d of a test pattern ("vp8" or "h264") and Opus
// audio as the recorder does.
func recordedWebM(t *testing.T, codec string, d time.Duration) []byte {
	t.Helper()
	video := mediatest.Video(t, codec, d, 30, 60)
	track := webm.Track{Kind: webm.Video, CodecID: webm.CodecVP8, Width: 320, Height: 240}
	if codec == "h264" {
		for i := range video {
			video[i].Data = mediatest.AVC(video[i].Data)
		}
		track.CodecID = webm.CodecH264
		track.CodecPrivate, _ = webm.AVCConfig(video[0].Data)
	}
	m, err := webm.NewMuxer([]webm.Track{{Kind: webm.Audio, CodecID: webm.CodecOpus, SampleRate: 48000, Channels: 2}, track})
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
	startConsultFromDashboard(t, doc)
	path, err := chromedp.Run(doc, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	consultID := strings.TrimPrefix(path, "/consults/")
	storedRecordingAt(t, dir, consultID, "r_play", recordedWebM(t, "vp8", 8*time.Second), time.Now().UTC().Add(-2*time.Hour))
	storedFileAt(t, dir, consultID, "r_phone", "matroska", recordedWebM(t, "h264", 8*time.Second), time.Now().UTC().Add(-time.Hour))

	do(t, doc, "record page", chromedp.Navigate(d.public+"/consults/"+consultID+"/record"), chromedp.WaitVisible(chromedp.CSS("video")))
	axe.Check(t, doc, "record")
	for i, codec := range []string{"VP8 in WebM", "H.264 in Matroska"} {
		v := `document.querySelectorAll("video")[` + strconv.Itoa(i) + `]`
		do(t, doc, "play "+codec, chromedp.Evaluate[chromedp.Void](`(() => { const v = `+v+`; v.muted = true; v.play(); })()`))
		waitTrue(t, doc, codec+": playback advances", v+`.currentTime > 1`, 20*time.Second)
		waitTrue(t, doc, codec+": the length is known", `Math.abs(`+v+`.duration - 8) < 0.3`, 5*time.Second)
		do(t, doc, "seek "+codec, chromedp.Evaluate[chromedp.Void](v+`.currentTime = 6`))
		waitTrue(t, doc, codec+": playback goes on after the seek", `(() => { const v = `+v+`; return !v.seeking && v.currentTime > 6.3 && !v.error; })()`, 20*time.Second)
		frames, err := chromedp.Run(doc, chromedp.Evaluate[int](v+`.getVideoPlaybackQuality().totalVideoFrames`))
		if err != nil || frames == 0 {
			t.Fatalf("%s: decoded %d frames, %v", codec, frames, err)
		}
	}
}
