package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
)

// sfuProcess is cmd/sfu running as a process of its own, as in production.
type sfuProcess struct {
	link string // the link's wss:// URL
	pki  *testpki.Link
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
}

// startSFUProcess builds cmd/sfu and starts it with a link for signal.
// Its media port listens on every interface: the node, unlike signal's
// -dev node, offers no loopback candidates, so the browsers on this
// machine reach it at its other addresses.
func startSFUProcess(t *testing.T) *sfuProcess {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build cmd/sfu: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sfu")
	build := exec.Command(goTool, "build", "-o", bin, "../sfu")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cmd/sfu: %v\n%s", err, out)
	}
	p := &sfuProcess{pki: testpki.NewLink(t), logs: &syncbuf.Buffer{}}
	p.cmd = exec.Command(bin, "-admin-listen", "127.0.0.1:0", "-link-listen", "127.0.0.1:0",
		"-media-udp-listen", "0.0.0.0:0", "-media-tcp-listen", "off",
		"-link-cert", p.pki.NodeCert, "-link-key", p.pki.NodeKey, "-link-client-ca", p.pki.CA.File)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("sfu's log:\n%s", p.logs.String())
		}
	})
	eventually.True(t, 30*time.Second, "the node's link listens", func() bool {
		for line := range strings.Lines(p.logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" && m["server"] == "link" {
				p.link = "wss://" + m["addr"].(string) + "/"
			}
		}
		return p.link != ""
	})
	return p
}

// signalFlags are signal's flags for this node.
func (p *sfuProcess) signalFlags() []string {
	return []string{"-sfu-node", p.link, "-sfu-link-cert", p.pki.SignalCert, "-sfu-link-key", p.pki.SignalKey, "-sfu-link-ca", p.pki.CA.File}
}

// TestBrowserRecordingSurvivesItsNodeBeingKilled records a consult of a
// clinician and a patient on a media node that runs as its own process,
// then kills the node (SIGKILL) mid-recording. The recording ends marked
// partial, its page says the media server stopped, and what was stored
// before the kill plays: ffprobe reads audio and video of about the time
// recorded, through the record page's addresses.
func TestBrowserRecordingSurvivesItsNodeBeingKilled(t *testing.T) {
	start := time.Now()
	node := startSFUProcess(t)
	spy := &recorderSpy{}
	dir := t.TempDir()
	d, doc := startConsultIn(t, dir, "dr.kill", false, watchRecorder(spy), append(recordingFlags, node.signalFlags()...)...)
	link, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.querySelector(".link-url").value`))
	if err != nil {
		t.Fatal(err)
	}
	consultID := consultOf(t, doc)
	pat := joinAsGuest(t, link, "Pat Example")
	admit(t, doc, "Pat Example")
	waitTrue(t, doc, "the clinician decodes the patient", remoteVideoDecoding, 90*time.Second)
	c := browserSession(t, doc, d)

	askToRecord(t, doc, map[string]context.Context{"patient": pat})
	do(t, pat, "the patient agrees", chromedp.Click(chromedp.CSS("#rec-agree")))
	waitTrue(t, doc, "the clinician's recording indicator", recordingShown, 90*time.Second)
	recStart := time.Now()
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": pat} {
		waitTrue(t, ctx, name+" decodes the other through the media node", decodingFromEveryoneViaServer+`(1)`, 90*time.Second)
		waitTrue(t, ctx, name+" shows the recording indicator", recordingShown, 30*time.Second)
	}
	<-time.After(6*time.Second - time.Since(recStart)) // the length recorded before the kill, not a wait for a state
	if err := node.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Since(recStart)
	killedAt := time.Now()
	t.Logf("node killed after %v of recording", killed.Round(time.Millisecond))

	var files []string
	var page string
	eventually.True(t, 60*time.Second, "the recording to end marked partial", func() bool {
		files, page = recordedFiles(t, d, c, consultID)
		return strings.Contains(page, "partial: the media server stopped during the recording")
	})
	t.Logf("the recording page says partial %v after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	waitTrue(t, doc, "the clinician's indicator goes", recordingHidden, 30*time.Second)
	if len(files) != 2 {
		t.Fatalf("%d files recorded:\n%s", len(files), page)
	}
	for _, f := range files {
		// What was stored plays: signal's recorder finishes the files
		// with every packet that reached it before the node died.
		checkRecordedFile(t, f, probeServed(t, d, c, f), killed, 2*time.Second)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	types, fields := recordingEvents(t, dir)
	stopped := slices.Index(types, "recording.stopped")
	if stopped < 0 || !strings.Contains(fields[stopped], "partial") || !strings.Contains(fields[stopped], "node-failed") {
		t.Fatalf("recording audit entries %q, %q", types, fields)
	}
	t.Logf("node killed mid-recording: %v", time.Since(start).Round(time.Second))
}
