package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openconsult/openconsult/internal/browsertest"
	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
	"github.com/openconsult/openconsult/store/storetest"
)

// balancer is the tests' TCP load balancer in front of the replicas: each
// connection goes to the first backend of its order that accepts it, so a
// test decides where new connections land and a dead backend is skipped,
// as a load balancer's health check would.
type balancer struct {
	ln    net.Listener
	mu    sync.Mutex
	order []string
}

func newBalancer(t *testing.T) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.forward(c)
		}
	}()
	return b
}

// prefer sets the order in which backends are tried for new connections.
func (b *balancer) prefer(addrs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.order = addrs
}

func (b *balancer) forward(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	order := slices.Clone(b.order)
	b.mu.Unlock()
	for _, addr := range order {
		up, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		defer up.Close()
		go func() {
			_, _ = io.Copy(up, c)
			up.Close()
		}()
		_, _ = io.Copy(c, up)
		return
	}
}

// httpsAddr is where a replica's HTTPS listener is, from its log.
func httpsAddr(t *testing.T, r *replica) string {
	t.Helper()
	var addr string
	eventually.True(t, 30*time.Second, "the HTTPS listener in the log", func() bool {
		for _, line := range logLines(t, r.stderr.String()) {
			if line["msg"] == "listening" && line["server"] == "https" {
				addr = line["addr"].(string)
			}
		}
		return addr != ""
	})
	return addr
}

// TestBrowserReplicasKeepAConsultThroughItsOwnersDeath runs a consult in
// two Chromiums on two signal replicas behind a load balancer: the
// clinician's page reaches one replica, the patient's the other. Lobby,
// admission, video decoded both ways and chat both ways cross replicas.
// The clinician's replica, which owns the consult, is killed: both pages
// reconnect through the load balancer to the survivor, the patient is in
// the call again without the lobby and chat still goes both ways. The
// audit log verifies afterwards.
func TestBrowserReplicasKeepAConsultThroughItsOwnersDeath(t *testing.T) {
	pg := storetest.NewPostgresSchema(t)
	redisURL, _, _ := redistest.Open(t)
	dir := t.TempDir()
	if out, err := runTool(t, nil, "audit", "keygen", "-dev", "-data-dir", dir, "-audit-key-file", filepath.Join(dir, "audit-signing.key")); err != nil {
		t.Fatalf("audit keygen: %v\n%s", err, out)
	}
	lb := newBalancer(t)
	public := "https://localhost:" + strings.TrimPrefix(lb.ln.Addr().String(), "127.0.0.1:")
	shared := []string{"-database", pg, "-redis", redisURL, "-turn-secret", "a shared turn secret for the test", "-public-url", public}
	start := func(name string) (*replica, string) {
		r := startReplica(t, name, dir, append([]string{"-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-"+name)}, shared...)...)
		return r, httpsAddr(t, r)
	}
	a, addrA := start("a")
	lb.prefer(addrA)
	site := &devServer{public: public, stdout: a.stdout, client: a.client}
	createFirstAdmin(t, site, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, site, "chief.admin", "a long admin passphrase")
	createClinician(t, site, dir, admin, "dr.replica", "a long clinician passphrase")
	b, addrB := start("b")

	// The clinician's pages reach a, which takes the consult.
	doc := browsertest.New(t)
	browserSignIn(t, doc, site, "dr.replica", "a long clinician passphrase")
	do(t, doc, "start consult",
		chromedp.WaitVisible(chromedp.CSS("#new-consult-button")),
		chromedp.Click(chromedp.CSS("#new-consult-button")),
		chromedp.WaitVisible(chromedp.CSS("#links-title")),
	)
	waitTrue(t, doc, "the clinician's call connected", `!!window.openConsult.state.me`, 30*time.Second)
	link, err := chromedp.Run(doc, chromedp.Evaluate[string](`document.querySelector(".link-url").value`))
	if u, perr := url.Parse(link); err != nil || perr != nil || "https://"+u.Host != public {
		t.Fatalf("patient link %q: %v", link, err)
	}

	// The patient's pages reach b.
	lb.prefer(addrB, addrA)
	patient := browsertest.New(t)
	do(t, patient, "patient joins",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Pat Example"),
		chromedp.Click(chromedp.CSS("#join-button")),
		chromedp.WaitVisible(chromedp.CSS("#lobby-wait")),
	)
	eventually.True(t, 30*time.Second, "b to relay the patient's tab to a", func() bool {
		return strings.Contains(b.stderr.String(), "tab relayed to the consult's owner")
	})
	waitTrue(t, doc, "clinician sees the waiting patient", `[...document.querySelectorAll("#lobby li.waiting")].some(li => li.textContent.includes("Pat Example"))`, 30*time.Second)
	do(t, doc, "admit", chromedp.Click(chromedp.CSS("#lobby li.waiting button.admit")))
	waitTrue(t, patient, "patient admitted", `!document.getElementById("stage").hidden`, 30*time.Second)
	waitTrue(t, doc, "clinician decodes the patient's video", remoteVideoDecoding, 90*time.Second)
	waitTrue(t, patient, "patient decodes the clinician's video", remoteVideoDecoding, 90*time.Second)
	say := func(ctx context.Context, text string) {
		t.Helper()
		do(t, ctx, "chat", chromedp.SendKeys(chromedp.CSS("#chat-text"), text), chromedp.Click(chromedp.CSS("#chat-form button")))
	}
	say(patient, "Hello from the patient's replica")
	waitTrue(t, doc, "clinician reads the patient's chat", `document.getElementById("chat-log").textContent.includes("patient's replica")`, 20*time.Second)
	say(doc, "Hello from the clinician's replica")
	waitTrue(t, patient, "patient reads the clinician's chat", `document.getElementById("chat-log").textContent.includes("clinician's replica")`, 20*time.Second)

	// The owner dies mid-call; the load balancer skips it from now on.
	a.kill()
	for name, page := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, page, name+"'s page notices the server went away", `window.openConsult.state.wsDown === true`, 30*time.Second)
	}
	for name, page := range map[string]context.Context{"clinician": doc, "patient": patient} {
		waitTrue(t, page, name+"'s page back in the call", `window.openConsult.state.wsDown === false && window.openConsult.state.admitted && !document.getElementById("stage").hidden && document.getElementById("lobby-wait").hidden`, 60*time.Second)
	}
	waitTrue(t, doc, "nobody waits in the clinician's lobby", `document.querySelectorAll("#lobby li.waiting").length === 0`, 5*time.Second)
	say(patient, "Still with you after the move")
	waitTrue(t, doc, "clinician reads chat after the move", `document.getElementById("chat-log").textContent.includes("after the move")`, 20*time.Second)
	say(doc, "Me too")
	waitTrue(t, patient, "patient reads chat after the move", `document.getElementById("chat-log").textContent.includes("Me too")`, 20*time.Second)

	if err := b.stop(); err != nil {
		t.Errorf("stop b: %v", err)
	}
	out, err := runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir, "-database", pg, "-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-b"))
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
