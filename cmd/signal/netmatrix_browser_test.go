//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
)

// matrixNetwork is one row of the firewall matrix: the router's rules and
// the path each browser's selected candidate pair must take, as a pattern
// over its class ("direct udp", "direct tcp", "relay udp", "relay tcp" or
// "relay tls", named from the browser's own side).
type matrixNetwork struct {
	name      string
	rules     string
	relayOnly bool
	two       map[string]string // clinician, patient: peer to peer
	three     map[string]string // clinician, patient, third: on the media node
	// oneSideRelays asks, in the consult of two, that at least one side
	// relay over UDP (two symmetric NATs never pair directly).
	oneSideRelays bool
	// check is the join page's verdict wanted on the patient's network
	// ("direct|relay" when empty).
	check string
}

var matrixNetworks = []matrixNetwork{
	{name: "open", rules: routerRules("", ""),
		two:   map[string]string{"clinician": "direct udp", "patient": "direct udp"},
		three: map[string]string{"clinician": "direct udp", "patient": "direct udp", "third": "direct udp"}},
	{name: "patient UDP blocked", rules: routerRules(`    iifname "patient" meta l4proto udp drop
    oifname "patient" meta l4proto udp drop`, ""),
		two: map[string]string{"clinician": ".", "patient": "relay (tcp|tls)"}, check: "relay",
		// ICE-TCP to the media node as a rule; Chromium now and then
		// gathers no TCP host candidate in time and takes its relay over
		// TCP instead. Either is a TCP path; UDP is never used.
		three: map[string]string{"clinician": "direct udp", "patient": "direct tcp|relay (tcp|tls)", "third": "direct udp"}},
	{name: "patient TCP 443 only", rules: routerRules(`    oifname "patient" ct state established,related accept
    oifname "patient" drop
    iifname "patient" tcp dport 443 accept
    iifname "patient" drop`, ""),
		two: map[string]string{"clinician": ".", "patient": "relay tls"}, check: "relay",
		three: map[string]string{"clinician": "direct udp", "patient": "relay tls", "third": "direct udp"}},
	{name: "symmetric NAT both sides", rules: routerRules(`    oifname { "clinician", "patient" } ct state established,related accept
    oifname { "clinician", "patient" } drop`, `    ip saddr 198.51.100.0/26 oifname != "clinician" snat ip to `+clinicianNAT+` fully-random
    ip saddr 203.0.113.0/26 oifname != "patient" snat ip to `+patientNAT+` fully-random`),
		two:           map[string]string{"clinician": "(direct|relay) udp", "patient": "(direct|relay) udp"},
		oneSideRelays: true,
		three:         map[string]string{"clinician": "direct udp", "patient": "direct udp", "third": "direct udp"}},
	{name: "relay-only consult", rules: routerRules("", ""), relayOnly: true,
		two:   map[string]string{"clinician": "relay", "patient": "relay"},
		three: map[string]string{"clinician": "relay", "patient": "relay", "third": "relay"}},
}

// candidate is what getStats says of one end of the selected pair.
type candidate struct {
	Type, Protocol, RelayProtocol, Address string
	Port                                   int
}

// selectedPath is one browser's selected candidate pair.
type selectedPath struct{ Local, Remote candidate }

// class names the path from the browser's side: through its relay and
// over which transport to the relay, or directly and over which transport.
func (p selectedPath) class() string {
	if p.Local.Type == "relay" {
		return "relay " + p.Local.RelayProtocol
	}
	return "direct " + p.Local.Protocol
}

func (p selectedPath) String() string {
	remote := p.Remote.Type + " " + p.Remote.Protocol
	return p.class() + " → " + remote
}

// selectedPairJS returns the selected pair of the peer connection (the
// first direct one, or the media node's when viaNode) as JSON, or "".
const selectedPairJS = `((viaNode) => (async () => {
  const oc = window.openConsult;
  const pc = !oc ? null : viaNode ? oc.mediaServer() : oc.peers()[0];
  if (!pc) return "";
  const stats = await pc.getStats();
  let pair = null;
  for (const s of stats.values()) if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  if (!pair || pair.state !== "succeeded") return "";
  const c = (x) => ({ type: x.candidateType, protocol: x.protocol, relayProtocol: x.relayProtocol || "", address: x.address || "", port: x.port || 0 });
  return JSON.stringify({ local: c(stats.get(pair.localCandidateId)), remote: c(stats.get(pair.remoteCandidateId)) });
})())`

// candidatePairsJS lists every candidate pair of the connection, to show
// what a browser tried when its path is not the expected one.
const candidatePairsJS = `((viaNode) => (async () => {
  const oc = window.openConsult;
  const pc = !oc ? null : viaNode ? oc.mediaServer() : oc.peers()[0];
  if (!pc) return "no connection";
  const stats = await pc.getStats();
  const c = (x) => x ? x.candidateType + "/" + x.protocol + (x.relayProtocol ? "(" + x.relayProtocol + ")" : "") + (x.tcpType ? "[" + x.tcpType + "]" : "") + " " + x.address + ":" + x.port : "?";
  const out = [];
  for (const s of stats.values()) if (s.type === "candidate-pair") out.push(c(stats.get(s.localCandidateId)) + " -> " + c(stats.get(s.remoteCandidateId)) + " " + s.state + (s.nominated ? " nominated" : ""));
  for (const s of stats.values()) if (s.type === "local-candidate") out.push("local " + c(s));
  for (const line of (pc.remoteDescription?.sdp || "").split("\r\n")) if (line.startsWith("a=candidate")) out.push("offered " + line);
  return out.join("\n");
})())`

// firstFramesJS resolves to the time (ms since the epoch) at which the page
// decoded video from n others, directly or through the media node when
// viaNode, or 0 after within ms.
const firstFramesJS = `((n, viaNode, within) => (async () => {
  const end = Date.now() + within;
  while (Date.now() < end) {
    const oc = window.openConsult;
    const pcs = !oc ? [] : viaNode ? [oc.mediaServer()].filter(Boolean) : oc.peers();
    let decoding = 0;
    for (const pc of pcs) {
      const stats = await pc.getStats();
      for (const s of stats.values()) if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) decoding++;
    }
    if (decoding >= n) return Date.now();
    await new Promise((r) => setTimeout(r, 20));
  }
  return 0;
})())`

// addressesSeenJS returns every SDP the page's connections hold and every
// candidate address getStats knows of, to look for an address in.
const addressesSeenJS = `(async () => {
  const oc = window.openConsult;
  let out = "";
  for (const pc of [...oc.peers(), oc.mediaServer()].filter(Boolean)) {
    out += (pc.localDescription?.sdp || "") + "\n" + (pc.remoteDescription?.sdp || "") + "\n";
    const stats = await pc.getStats();
    for (const s of stats.values()) if (s.type === "local-candidate" || s.type === "remote-candidate") out += " " + s.address + " ";
  }
  return out;
})()`

// matrixBrowser is a browser of the matrix, its role and its host address.
type matrixBrowser struct {
	role, addr string
	ctx        context.Context
}

// matrixRow is what one consult on one network measured.
type matrixRow struct {
	network, consult string
	paths            map[string]selectedPath
	firstFrame       map[string]time.Duration
	check            string // the patient's join page: verdict and time
}

// TestBrowserFirewallMatrix runs real consults between Chromium browsers on
// separate networks, in network namespaces behind a router whose nftables
// rules make each network of the matrix: open, UDP blocked on the patient's
// side, only TCP 443 on the patient's side, symmetric NAT on both sides,
// and a relay-only consult. On each it runs a consult of two (peer to peer)
// and one of three (on the media node), checks that every browser decodes
// the others' video over the expected kind of path, and logs the time to
// the first decoded frame and the selected candidate pairs.
func TestBrowserFirewallMatrix(t *testing.T) {
	browsertest.Find(t)
	m := newMatrixLab(t)
	dir := t.TempDir()
	d := startSignalIn(t, m.server, dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	createClinician(t, d, dir, admin, "dr.matrix", "a long clinician passphrase")

	clinician := matrixBrowser{"clinician", clinicianAddr, browsertest.New(t, browserIn(m.clinician))}
	patient := matrixBrowser{"patient", patientAddr, browsertest.New(t, browserIn(m.patient))}
	browserSignIn(t, clinician.ctx, d, "dr.matrix", "a long clinician passphrase")
	// Signing in ends on the dashboard; a navigation before it loads is aborted.
	do(t, clinician.ctx, "dashboard after sign-in", chromedp.WaitVisible(chromedp.CSS("#new-consult-button")))

	var rows []matrixRow
	for _, nw := range matrixNetworks {
		t.Run("two/"+nw.name, func(t *testing.T) {
			m.router.Nftables(nw.rules)
			rows = append(rows, consultOfTwo(t, d, nw, clinician, patient))
		})
	}
	third := matrixBrowser{"third", thirdAddr, browsertest.New(t, browserIn(m.third))}
	for _, nw := range matrixNetworks {
		t.Run("three/"+nw.name, func(t *testing.T) {
			m.router.Nftables(nw.rules)
			rows = append(rows, consultOfThree(t, d, nw, clinician, patient, third))
		})
	}
	t.Log("relay refusals: " + relayRefusals(t, d))
	t.Run("two/"+unreachableRelay.name, func(t *testing.T) {
		// The relay moves off the HTTPS port: the same server restarted
		// with TURN on 3478 only, which the patient's network blocks.
		start := time.Now()
		if err := d.stop(); err != nil {
			t.Fatalf("stop signal: %v", err)
		}
		d = startSignalIn(t, m.server, dir, "-relay-tls-listen", "off")
		m.router.Nftables(unreachableRelay.rules)
		t.Logf("server restarted in %s", time.Since(start).Round(10*time.Millisecond))
		rows = append(rows, checkFailsWithoutRelay(t, d, clinician, patient))
	})
	t.Log("firewall matrix:\n" + matrixTable(rows))
}

// unreachableRelay is the network of the matrix where nothing reaches the
// relay: the patient may open TCP 443 only, and the relay listens on 3478
// alone (UDP and TCP), not on the HTTPS port.
var unreachableRelay = matrixNetwork{name: "patient TCP 443 only, relay off 443", rules: matrixNetworks[2].rules, check: "failed"}

// checkFailsWithoutRelay: on a network where nothing reaches the relay,
// the patient's join page says the check failed and what to try, never
// that the connection is ready, and the clinician's lobby shows that the
// patient's check failed.
func checkFailsWithoutRelay(t *testing.T, d *devServer, clinician, patient matrixBrowser) matrixRow {
	t.Helper()
	// The session outlives the restart (it is in the database); sign in
	// again only if the dashboard sent the clinician to the sign-in page.
	do(t, clinician.ctx, "dashboard after the restart", chromedp.Navigate(d.public+"/consults"), chromedp.WaitReady("body"))
	if signedIn, err := chromedp.Run(clinician.ctx, chromedp.Evaluate[bool](`!!document.querySelector("#new-consult-button")`)); err != nil || !signedIn {
		browserSignIn(t, clinician.ctx, d, "dr.matrix", "a long clinician passphrase")
	}
	links := startMatrixConsult(t, d, clinician.ctx, false, false)
	check, text := joinAfterCheck(t, patient.ctx, links[0], "Pat Elsewhere", unreachableRelay.check)
	if strings.Contains(text, "ready") || !strings.Contains(text, "mobile data") {
		t.Errorf("the failed check tells the patient %q; want what to try (mobile data, another network) and no \"ready\"", text)
	}
	waitTrue(t, clinician.ctx, "the clinician sees that the patient's check failed",
		`[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Elsewhere") && li.textContent.includes("connection check failed"))`, 15*time.Second)
	return matrixRow{network: unreachableRelay.name, consult: "two, join check only", check: check}
}

// startMatrixConsult starts a consult from the clinician's dashboard and returns
// its patient link, and an interpreter's link when asked.
func startMatrixConsult(t *testing.T, d *devServer, doc context.Context, relayOnly, second bool) []string {
	t.Helper()
	do(t, doc, "dashboard", chromedp.Navigate(d.public+"/consults"), chromedp.WaitVisible(chromedp.CSS("#new-consult-button")))
	if relayOnly {
		do(t, doc, "relay option", chromedp.Click(chromedp.CSS(`input[name="relay_only"]`)))
		waitTrue(t, doc, "relay option ticked", `document.querySelector('input[name="relay_only"]').checked`, 5*time.Second)
	}
	startConsultFromDashboard(t, doc)
	if second {
		do(t, doc, "interpreter link",
			chromedp.SetValue(chromedp.CSS("#label"), "interpreter"),
			chromedp.Click(chromedp.CSS(`form[action$="/links"] button`)),
		)
		waitTrue(t, doc, "two links", `document.querySelectorAll(".link-url").length === 2`, 15*time.Second)
	}
	links, err := chromedp.Run(doc, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".link-url")].map(i => i.value)`))
	if err != nil || len(links) == 0 || !strings.Contains(links[0], "/j/") {
		t.Fatalf("links %q: %v", links, err)
	}
	return links
}

func consultOfTwo(t *testing.T, d *devServer, nw matrixNetwork, clinician, patient matrixBrowser) matrixRow {
	links := startMatrixConsult(t, d, clinician.ctx, nw.relayOnly, false)
	check, _ := joinAfterCheck(t, patient.ctx, links[0], "Pat Example", nw.check)
	admitted := admitAt(t, clinician.ctx, "Pat Example")
	row := matrixRow{network: nw.name, consult: "two, peer to peer", check: check}
	row.firstFrame = firstFrames(t, admitted, 1, false, clinician, patient)
	row.paths = settledPaths(t, nw.two, false, clinician, patient)
	if problem := pathsMismatch(nw.two, row.paths); problem != "" {
		t.Error(problem)
	}
	if t.Failed() {
		for _, b := range []matrixBrowser{clinician, patient} {
			pairs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf("%s(false)", candidatePairsJS), chromedp.EvalAwaitPromise))
			t.Logf("%s's candidate pairs:\n%s", b.role, pairs)
		}
	}
	if nw.oneSideRelays {
		// Each side's pair must have a relay at one end; which side's
		// relay it is may differ between the two ends' getStats while ICE
		// settles.
		for role, p := range row.paths {
			if p.Local.Type != "relay" && p.Remote.Type != "relay" {
				t.Errorf("the %s pairs directly through two symmetric NATs: %v", role, row.paths)
			}
		}
	}
	switch {
	case nw.relayOnly:
		checkNoAddressLeak(t, clinician, patient)
		checkNoAddressLeak(t, patient, clinician)
	case nw.name == "open":
		// The control for the check above: a consult that is not
		// relay-only shows each side the other's address.
		if !knows(addressesSeen(t, patient), clinicianAddr) {
			t.Error("on the open network the patient's browser does not see the clinician's address: the relay-only check would prove nothing")
		}
	}
	return row
}

func consultOfThree(t *testing.T, d *devServer, nw matrixNetwork, clinician, patient, third matrixBrowser) matrixRow {
	links := startMatrixConsult(t, d, clinician.ctx, nw.relayOnly, true)
	joinAsPatient(t, patient.ctx, links[0], "Pat Example")
	admitAt(t, clinician.ctx, "Pat Example")
	waitTrue(t, clinician.ctx, "the clinician decodes the patient", remoteVideoDecoding, 60*time.Second)
	joinAsPatient(t, third.ctx, links[1], "Ines Interpreter")
	admitted := admitAt(t, clinician.ctx, "Ines Interpreter")
	row := matrixRow{network: nw.name, consult: "three, media node"}
	row.firstFrame = firstFrames(t, admitted, 2, true, clinician, patient, third)
	row.paths = settledPaths(t, nw.three, true, clinician, patient, third)
	if problem := pathsMismatch(nw.three, row.paths); problem != "" {
		t.Error(problem)
	}
	if t.Failed() {
		for _, b := range []matrixBrowser{clinician, patient, third} {
			pairs, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf("%s(true)", candidatePairsJS), chromedp.EvalAwaitPromise))
			t.Logf("%s's candidate pairs with the media node:\n%s", b.role, pairs)
		}
	}
	if nw.relayOnly {
		for _, a := range []matrixBrowser{clinician, patient, third} {
			for _, b := range []matrixBrowser{clinician, patient, third} {
				if a.role != b.role {
					checkNoAddressLeak(t, a, b)
				}
			}
		}
	}
	return row
}

// joinCheckJS resolves, once the join page's connectivity check has a
// verdict, to the verdict, the time since the page began loading and the
// text shown.
const joinCheckJS = `new Promise((resolve) => {
  const poll = setInterval(() => {
    const s = document.getElementById("network-status");
    if (s && s.dataset.result) {
      clearInterval(poll);
      resolve([s.dataset.result, String(Math.round(performance.now())), s.textContent]);
    }
  }, 10);
})`

// joinAfterCheck opens the link, waits for the join page's connectivity
// check, which must give a verdict matching want, then joins under name.
// It returns the verdict and how long after the page began loading it came,
// and the verdict's text.
func joinAfterCheck(t *testing.T, ctx context.Context, link, name, want string) (string, string) {
	t.Helper()
	if want == "" {
		want = "direct|relay"
	}
	do(t, ctx, "open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#name")))
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	verdict, err := chromedp.Run(c, chromedp.Evaluate[[]string](joinCheckJS, chromedp.EvalAwaitPromise))
	if err != nil || len(verdict) != 3 {
		t.Fatalf("join page's check: %q, %v", verdict, err)
	}
	result, ms := verdict[0], verdict[1]
	if !regexp.MustCompile(`^(` + want + `)$`).MatchString(result) {
		t.Errorf("the join page's check says %q, want %q", result, want)
	}
	do(t, ctx, name+" joins",
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	return result + " in " + ms + " ms", verdict[2]
}

// admitAt admits the named guest and returns when the click happened.
func admitAt(t *testing.T, doc context.Context, name string) time.Time {
	t.Helper()
	admit(t, doc, name)
	return time.Now()
}

// firstFrames measures, in every browser at once, the time from since to
// its first decoded frames from n others.
func firstFrames(t *testing.T, since time.Time, n int, viaNode bool, browsers ...matrixBrowser) map[string]time.Duration {
	t.Helper()
	out := make(map[string]time.Duration)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(browsers))
	for _, b := range browsers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
			defer cancel()
			at, err := chromedp.Run(ctx, chromedp.Evaluate[int64](fmt.Sprintf("%s(%d, %t, 75000)", firstFramesJS, n, viaNode), chromedp.EvalAwaitPromise))
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %w", b.role, err)
			case at == 0:
				errs <- fmt.Errorf("%s decoded no video from %d others", b.role, n)
			default:
				mu.Lock()
				out[b.role] = time.UnixMilli(at).Sub(since)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// selectedPaths reads every browser's selected candidate pair.
func selectedPaths(t *testing.T, viaNode bool, browsers ...matrixBrowser) map[string]selectedPath {
	t.Helper()
	out := make(map[string]selectedPath)
	for _, b := range browsers {
		var raw string
		for deadline := time.Now().Add(10 * time.Second); raw == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var err error
			if raw, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf("%s(%t)", selectedPairJS, viaNode), chromedp.EvalAwaitPromise)); err != nil {
				t.Fatalf("%s's selected pair: %v", b.role, err)
			}
		}
		var p selectedPath
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			t.Fatalf("%s has no selected pair (%q): %v", b.role, raw, err)
		}
		out[b.role] = p
	}
	return out
}

// settledPaths reads the browsers' selected pairs until each is of the
// class wanted, or for 15 s: ICE goes on checking better pairs after media
// flows on the first that works, and moves the media when one succeeds
// (a browser whose UDP is blocked may start through the relay over TCP and
// move to ICE-TCP to the media node a moment later).
func settledPaths(t *testing.T, want map[string]string, viaNode bool, browsers ...matrixBrowser) map[string]selectedPath {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := selectedPaths(t, viaNode, browsers...)
		if pathsMismatch(want, got) == "" || time.Now().After(deadline) {
			return got
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pathsMismatch says which browser's path is not of the class wanted.
func pathsMismatch(want map[string]string, got map[string]selectedPath) string {
	var out []string
	for role, pattern := range want {
		if !regexp.MustCompile(`^(` + pattern + `)`).MatchString(got[role].class()) {
			out = append(out, fmt.Sprintf("%s's media goes %s (%+v), want %q", role, got[role], got[role], pattern))
		}
	}
	return strings.Join(out, "; ")
}

// checkNoAddressLeak fails when a's connections carry b's host address,
// in their SDP or in a candidate.
func checkNoAddressLeak(t *testing.T, a, b matrixBrowser) {
	t.Helper()
	if seen := addressesSeen(t, a); knows(seen, b.addr) {
		t.Errorf("the %s's browser knows the %s's address %s:\n%s", a.role, b.role, b.addr, seen)
	}
}

// addressesSeen returns the SDP and candidate addresses a's connections hold.
func addressesSeen(t *testing.T, a matrixBrowser) string {
	t.Helper()
	seen, err := chromedp.Run(a.ctx, chromedp.Evaluate[string](addressesSeenJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s's descriptions: %v", a.role, err)
	}
	return seen
}

// knows reports whether text names the IPv4 address addr.
func knows(text, addr string) bool {
	return regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(addr) + `([^0-9]|$)`).MatchString(text)
}

// matrixTable formats the rows for the log and for
// docs/benchmarks/connectivity.md.
func matrixTable(rows []matrixRow) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "network\tconsult\tjoin check (patient)\tfirst frame (clinician / patient / third)\tclinician's pair\tpatient's pair\tthird's pair")
	for _, r := range rows {
		frames := []string{}
		pairs := []string{}
		for _, role := range []string{"clinician", "patient", "third"} {
			if f, ok := r.firstFrame[role]; ok {
				frames = append(frames, f.Round(10*time.Millisecond).String())
			}
			if p, ok := r.paths[role]; ok {
				pairs = append(pairs, p.String())
			} else {
				pairs = append(pairs, "")
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.network, r.consult, r.check, strings.Join(frames, " / "), strings.Join(pairs, "\t"))
	}
	w.Flush()
	return b.String()
}
