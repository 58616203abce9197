package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// TestBrowserJoinCheckReportsWhatWasProven runs the join page's
// connectivity check against a reachable relay and against ICE servers
// nothing answers on, and checks that the verdict shown matches the result,
// that "ready" needs a relay allocation or a STUN answer (host candidates,
// which every browser has, prove nothing), and that the clinician's lobby
// shows the guest's result.
func TestBrowserJoinCheckReportsWhatWasProven(t *testing.T) {
	tests := []struct {
		name    string
		flags   func(t *testing.T) []string
		results string // the data-result values accepted
		text    string // in the verdict
		details string // in the details behind the toggle
		lobby   string // in the clinician's lobby entry
	}{
		{"relay reachable", func(*testing.T) []string { return nil }, "direct relay", "Your connection is ready", "TURN relay reachable over: UDP", "connection check passed"},
		{"nothing answers", func(*testing.T) []string {
			return []string{"-stun-url", "stun:127.0.0.1:9", "-turn-url", "turn:127.0.0.1:9?transport=udp",
				"-turn-url", "turn:127.0.0.1:9?transport=tcp", "-turn-secret", "secret of a relay that is not there"}
		}, "failed", "mobile data", "TURN relay: not reachable", "connection check failed"},
		{"UDP dropped, TLS on the HTTPS port", udpDroppedFlags, "relay", "Your connection is ready", "TURN relay reachable over: TLS", "connection check passed through the relay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, doc := startConsult(t, "dr.check", false, tt.flags(t)...)
			defer d.stop()
			link := patientLink(t, doc)
			patient := browsertest.New(t)
			do(t, patient, "open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
			start := time.Now()
			waitTrue(t, patient, "check finished", `!!document.getElementById("network-status").dataset.result`, 15*time.Second)
			t.Logf("check finished after about %s", time.Since(start).Round(100*time.Millisecond))
			verdict, err := chromedp.Run(patient, chromedp.Evaluate[[]string](`(() => { const s = document.getElementById("network-status"); return [s.dataset.result, s.textContent, sessionStorage.getItem("openconsult.check"), document.getElementById("network-detail-list").textContent]; })()`))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(" "+tt.results+" ", " "+verdict[0]+" ") || !strings.Contains(verdict[1], tt.text) || verdict[2] != verdict[0] {
				t.Fatalf("check result %q, verdict %q, kept %q; want one of %q saying %q", verdict[0], verdict[1], verdict[2], tt.results, tt.text)
			}
			if !strings.Contains(verdict[3], tt.details) {
				t.Fatalf("details %q, want %q", verdict[3], tt.details)
			}
			if jargon := regexp.MustCompile(`\b(UDP|TCP|TLS|STUN|TURN|(?i:relay))\b`).FindString(verdict[1]); jargon != "" {
				t.Fatalf("the patient's verdict says %q: %q", jargon, verdict[1])
			}
			if verdict[0] == "failed" && strings.Contains(verdict[1], "ready") {
				t.Fatalf("a failed check says %q", verdict[1])
			}
			do(t, patient, "join",
				chromedp.SendKeys(chromedp.CSS("#name"), "Pat Check"),
				chromedp.Click(chromedp.CSS("#join-button")),
				chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
			)
			waitTrue(t, doc, "clinician sees the guest's check", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Check") && li.textContent.includes(`+quoteJS(tt.lobby)+`))`, 15*time.Second)
		})
	}
}

// udpDroppedFlags gives browsers a STUN and a TURN-over-UDP server that
// never answer, as on a network that drops UDP, and the embedded relay's
// TURN over TLS on the HTTPS port.
func udpDroppedFlags(t *testing.T) []string {
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	go func() { // reads and drops every datagram
		buf := make([]byte, 2048)
		for {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	// The HTTPS port must be known for the turns: URL: take a free one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return []string{"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-relay-tls-listen", "off", "-relay-on-https-port", "-turn-secret", sharedSecret,
		"-stun-url", "stun:" + hole.LocalAddr().String(), "-turn-url", "turn:" + hole.LocalAddr().String() + "?transport=udp",
		"-turn-url", fmt.Sprintf("turns:localhost:%d?transport=tcp", port)}
}

// TestBrowserConsultThroughTLSOnTheHTTPSPort runs a relay-only consult in
// which browsers know only the turns: URL of the HTTPS port, as a patient
// allowed nothing but TCP 443 would reach it: both decode each other's
// video, and the indicator says TLS.
func TestBrowserConsultThroughTLSOnTheHTTPSPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d, doc := startConsult(t, "dr.tls", true, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-relay-tls-listen", "off", "-relay-on-https-port",
		"-turn-secret", sharedSecret, "-turn-url", fmt.Sprintf("turns:localhost:%d?transport=tcp", port))
	defer d.stop()
	link := patientLink(t, doc)
	patient := browsertest.New(t)
	do(t, patient, "patient joins",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Pat Example"),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	waitTrue(t, doc, "clinician sees the waiting patient", `document.querySelectorAll("#lobby li.waiting").length === 1`, 15*time.Second)
	do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
	for name, ctx := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, ctx, name+" decodes video", remoteVideoDecoding, 90*time.Second)
		waitTrue(t, ctx, name+" media through the relay", selectedPairIsRelay, 10*time.Second)
		waitTrue(t, ctx, name+" indicator says TLS", `/relay TLS on your side and relay on .*'s side/.test(document.getElementById("path").textContent)`, 10*time.Second)
	}
}
