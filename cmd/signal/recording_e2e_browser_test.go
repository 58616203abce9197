package main

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/recording/mediatest"
)

// recordingLength is how long the end-to-end tests record.
const recordingLength = 10 * time.Second

// browserSession is an HTTP client holding the session of the browser
// ctx, for fetching what its pages link to.
func browserSession(t *testing.T, ctx context.Context, d *devServer) *http.Client {
	t.Helper()
	cookies, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{d.public + "/"}})
		return res.Cookies, err
	})
	if err != nil || len(cookies) == 0 {
		t.Fatalf("the browser's cookies: %d, %v", len(cookies), err)
	}
	u, _ := url.Parse(d.public + "/")
	jar, _ := cookiejar.New(nil)
	var hc []*http.Cookie
	for _, c := range cookies {
		hc = append(hc, &http.Cookie{Name: c.Name, Value: c.Value, Path: "/", Secure: true})
	}
	jar.SetCookies(u, hc)
	c := *d.client
	c.Jar = jar
	return &c
}

// consultOf returns the id of the consult whose page ctx shows.
func consultOf(t *testing.T, ctx context.Context) string {
	t.Helper()
	path, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil || !strings.HasPrefix(path, "/consults/") {
		t.Fatalf("consult page %q: %v", path, err)
	}
	return strings.Split(strings.TrimPrefix(path, "/consults/"), "/")[0]
}

var recordedFileSrc = regexp.MustCompile(`<video [^>]*src="(/consults/[^"]+/recordings/[^"]+/files/[^"]+)"`)

// recordedFiles returns the player addresses the consult's recordings page
// shows to c, and the page.
func recordedFiles(t *testing.T, d *devServer, c *http.Client, consultID string) ([]string, string) {
	t.Helper()
	resp, body := getRange(t, c, d.public+"/consults/"+consultID+"/recordings", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("recordings page = %d:\n%s", resp.StatusCode, body)
	}
	var out []string
	for _, m := range recordedFileSrc.FindAllStringSubmatch(string(body), -1) {
		out = append(out, m[1])
	}
	return out, string(body)
}

// probeServed fetches a recorded file as the page's player does, in byte
// ranges from the start, and has ffprobe read what was served.
func probeServed(t *testing.T, d *devServer, c *http.Client, path string) mediatest.Probe {
	t.Helper()
	var whole []byte
	ranges := 0
	for {
		ranges++
		from := len(whole)
		resp, body := getRange(t, c, d.public+path, "bytes="+strconv.Itoa(from)+"-"+strconv.Itoa(from+64<<10-1))
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && from > 0 {
			break
		}
		if resp.StatusCode != http.StatusPartialContent || len(body) == 0 {
			t.Fatalf("GET %s bytes %d- = %d (%d bytes)", path, from, resp.StatusCode, len(body))
		}
		whole = append(whole, body...)
		total := resp.Header.Get("Content-Range")
		if strings.HasSuffix(total, "/"+strconv.Itoa(len(whole))) {
			break
		}
	}
	resp, all := getRange(t, c, d.public+path, "")
	if resp.StatusCode != http.StatusOK || string(all) != string(whole) {
		t.Fatalf("the whole file (%d, %d bytes) differs from its ranges (%d bytes)", resp.StatusCode, len(all), len(whole))
	}
	t.Logf("%s: %d bytes in %d ranges", path, len(whole), ranges)
	file := filepath.Join(t.TempDir(), "served.webm")
	if err := os.WriteFile(file, whole, 0o600); err != nil {
		t.Fatal(err)
	}
	return mediatest.ProbeFile(t, file)
}

// checkRecordedFile: audio and video, each of about want.
func checkRecordedFile(t *testing.T, path string, p mediatest.Probe, want, tolerance time.Duration) {
	t.Helper()
	_, audio := p.Stream("audio")
	v, video := p.Stream("video")
	got := p.Duration()
	t.Logf("%s: %s, %v, video %s %dx%d, %s frames", path, p.Format.FormatName, got.Round(10*time.Millisecond), v.CodecName, v.Width, v.Height, v.Frames)
	if !audio || !video || got < want-tolerance || got > want+tolerance || v.Frames == "0" {
		t.Errorf("%s: streams %+v, %v long, want audio and video of %v ± %v", path, p.Streams, got, want, tolerance)
	}
}

// recordingEvents returns the recording.* audit entries in order, with
// their fields, after checking the log's signatures and chain with the
// `signal audit verify` command; the server must be stopped.
func recordingEvents(t *testing.T, dir string) (types, fields []string) {
	t.Helper()
	base := []string{"-dev", "-data-dir", dir}
	out, err := runTool(t, nil, append([]string{"audit", "verify"}, base...)...)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	export, err := runTool(t, nil, append([]string{"audit", "export", "-format", "csv"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(export)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("audit export: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, r := range rows[1:] {
		if strings.HasPrefix(r[col["type"]], "recording.") {
			types = append(types, r[col["type"]])
			fields = append(fields, r[col["fields"]])
		}
	}
	return types, fields
}

// askToRecord has the clinician ask; the question opens on every guest.
func askToRecord(t *testing.T, doc context.Context, guests map[string]context.Context) {
	t.Helper()
	waitTrue(t, doc, "the Record button", `document.getElementById("record").checkVisibility() && document.getElementById("record").getAttribute("aria-pressed") !== "true"`, 15*time.Second)
	do(t, doc, "ask to record", chromedp.Click(chromedp.CSS("#record")))
	for name, g := range guests {
		waitTrue(t, g, name+" is asked", `document.getElementById("rec-dialog").open`, 15*time.Second)
	}
}

// TestBrowserRecordingEndToEnd records a consult of a clinician and two
// guests in three Chromium pages. A guest who declines keeps it from
// starting: nothing is stored. When all three agree it records about ten
// seconds, then stops. The recordings page lists one file per member, and
// each, fetched with the clinician's session in byte ranges (decrypted by
// the server), is read by ffprobe as audio and video of the recorded
// length. Chromium plays it from the record page, which passes axe-core. One stored chunk altered
// afterwards is refused, not served. The audit log holds requested,
// declined, then requested, consented by all three, started, stopped and
// viewed, in that order, and `signal audit verify` finds it intact.
func TestBrowserRecordingEndToEnd(t *testing.T) {
	start := time.Now()
	axe := browsertest.LoadAxe(t)
	spy := &recorderSpy{}
	dir := t.TempDir()
	d, doc := startConsultIn(t, dir, "dr.e2e", false, watchRecorder(spy), recordingFlags...)
	do(t, doc, "second link",
		chromedp.SetValue(chromedp.CSS("#label"), "interpreter"),
		chromedp.Click(chromedp.CSS(`form[action$="/links"] button`)),
	)
	waitTrue(t, doc, "two links", `document.querySelectorAll(".link-url").length === 2`, 15*time.Second)
	links, err := chromedp.Run(doc, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".link-url")].map(i => i.value)`))
	if err != nil || len(links) != 2 {
		t.Fatalf("links %q: %v", links, err)
	}
	consultID := consultOf(t, doc)
	pat := joinAsGuest(t, links[0], "Pat Example")
	admit(t, doc, "Pat Example")
	ivy := joinAsGuest(t, links[1], "Ivy Interpreter")
	admit(t, doc, "Ivy Interpreter")
	all := map[string]context.Context{"clinician": doc, "patient": pat, "interpreter": ivy}
	guests := map[string]context.Context{"patient": pat, "interpreter": ivy}
	for name, ctx := range all {
		waitTrue(t, ctx, name+" decodes both others through the media server", decodingFromEveryoneViaServer+`(2)`, 90*time.Second)
	}
	c := browserSession(t, doc, d)

	// The interpreter declines: the question closes for the patient too,
	// nothing starts and nothing is stored.
	askToRecord(t, doc, guests)
	do(t, ivy, "the interpreter declines", chromedp.Click(chromedp.CSS("#rec-decline")))
	waitTrue(t, doc, "the clinician hears a participant declined", `document.getElementById("rec-announce").textContent.includes("a participant did not agree")`, 15*time.Second)
	waitTrue(t, pat, "the patient's question closes", `!document.getElementById("rec-dialog").open`, 15*time.Second)
	for name, ctx := range all {
		waitTrue(t, ctx, name+" shows no recording", recordingHidden, 5*time.Second)
	}
	if starts, _ := spy.seen(); len(starts) != 0 {
		t.Fatalf("a declined request started the recorder: %+v", starts)
	}
	if files, page := recordedFiles(t, d, c, consultID); len(files) != 0 || strings.Contains(page, `class="recording"`) || !strings.Contains(page, "No recordings.") {
		t.Fatalf("a declined request stored a recording:\n%s", page)
	}

	// All three agree; it records about ten seconds and stops.
	askToRecord(t, doc, guests)
	for name, g := range guests {
		do(t, g, name+" agrees", chromedp.Click(chromedp.CSS("#rec-agree")))
	}
	waitTrue(t, doc, "the clinician's recording indicator", recordingShown, 90*time.Second)
	recStart := time.Now()
	for name, ctx := range all {
		waitTrue(t, ctx, name+" shows the recording indicator", recordingShown, 30*time.Second)
	}
	<-time.After(recordingLength - time.Since(recStart)) // the length of the recording, not a wait for a state
	do(t, doc, "stop recording", chromedp.Click(chromedp.CSS("#record")))
	stopped := recordingHidden + ` && document.getElementById("rec-announce").textContent === "Recording stopped."`
	waitTrue(t, doc, "the clinician hides the indicator", stopped, 30*time.Second)
	recorded := time.Since(recStart) // before the other pages, whose lag under load is not recorded time
	for name, ctx := range guests {
		waitTrue(t, ctx, name+" hides the indicator", stopped, 30*time.Second)
	}
	t.Logf("recorded for %v (the clinician's indicator on to off)", recorded.Round(time.Millisecond))

	// The recording opens: one file per member, audio and video of the
	// recorded length, through the server's decryption and byte ranges.
	files, page := recordedFiles(t, d, c, consultID)
	if len(files) != 3 || !strings.Contains(page, "complete") {
		t.Fatalf("%d recorded files:\n%s", len(files), page)
	}
	for _, f := range files {
		checkRecordedFile(t, f, probeServed(t, d, c, f), recorded, 2*time.Second)
	}

	// Chromium plays it from the record page.
	do(t, doc, "record page", chromedp.Navigate(d.public+"/consults/"+consultID+"/record"), chromedp.WaitVisible(chromedp.CSS("video")))
	axe.Check(t, doc, "record page with the recording")
	do(t, doc, "play", chromedp.Evaluate[chromedp.Void](`(() => { const v = document.querySelector("video"); v.muted = true; v.play(); })()`))
	waitTrue(t, doc, "playback advances", `(() => { const v = document.querySelector("video"); return v.currentTime > 2 && !v.error; })()`, 30*time.Second)
	if frames, err := chromedp.Run(doc, chromedp.Evaluate[int](`document.querySelector("video").getVideoPlaybackQuality().totalVideoFrames`)); err != nil || frames == 0 {
		t.Fatalf("decoded %d frames: %v", frames, err)
	}

	// A stored chunk altered on disk is refused, not served.
	objects, err := filepath.Glob(filepath.Join(dir, "objects", "recordings", "*", "*"))
	if err != nil || len(objects) == 0 {
		t.Fatalf("stored objects: %v, %v", objects, err)
	}
	slices.Sort(objects)
	tampered := 0
	for _, o := range objects {
		raw, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 0x01
		if err := os.WriteFile(o, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		tampered++
	}
	for _, f := range files {
		resp, body := getRange(t, c, d.public+f, "")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "damaged") {
			t.Errorf("%s with every stored object altered = %d, %d bytes", f, resp.StatusCode, len(body))
		}
	}
	t.Logf("%d stored objects altered, every file refused", tampered)

	// The audit log tells it all, in order, and is intact.
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	db, keys := openData(t, dir)
	recs, err := db.RecordingsByConsult(context.Background(), consultID)
	keys.Close()
	db.Close()
	if err != nil || len(recs) != 1 {
		t.Fatalf("recording rows: %d, %v (the declined request must have none)", len(recs), err)
	}
	types, fields := recordingEvents(t, dir)
	want := []string{"recording.requested", "recording.consented", "recording.declined",
		"recording.requested", "recording.consented", "recording.consented", "recording.consented", "recording.started", "recording.stopped", "recording.viewed"}
	if len(types) < len(want) || !slices.Equal(types[:len(want)], want) {
		t.Fatalf("recording audit entries %q, want %q then views", types, want)
	}
	for i, ty := range types[len(want):] {
		if ty != "recording.viewed" {
			t.Errorf("audit entry %d after the first view: %s", len(want)+i, ty)
		}
	}
	starts, _ := spy.seen()
	if len(starts) != 1 || !strings.Contains(fields[7], starts[0].Request) || !strings.Contains(fields[3], starts[0].Request) {
		t.Errorf("recording.started (%s) does not name the consent request of recording.requested (%s)", fields[7], fields[3])
	}
	t.Logf("end to end: %v", time.Since(start).Round(time.Second))
}
