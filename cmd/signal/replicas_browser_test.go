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
// the call again without the lobby, video is decoded again both ways and
// chat still goes both ways. The audit log verifies afterwards.
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

	// The clinician's pages reach a, which takes the consult; the
	// patient's reach b.
	doc, patient := browserCall(t, site, "dr.replica", "a long clinician passphrase", func(_ context.Context, link string) {
		if u, err := url.Parse(link); err != nil || "https://"+u.Host != public {
			t.Fatalf("patient link %q: %v", link, err)
		}
		lb.prefer(addrB, addrA)
	})
	if !strings.Contains(b.stderr.String(), "tab relayed to the consult's owner") {
		t.Fatal("b did not relay the patient's tab to a")
	}
	chatBothWays(t, doc, patient, "across the replicas")

	// The owner dies mid-call; the load balancer skips it from now on.
	a.kill()
	pages := map[string]context.Context{"clinician": doc, "patient": patient}
	noticedServerGone(t, pages)
	backInTheCall(t, doc, pages)
	chatBothWays(t, doc, patient, "after the move")

	if err := b.stop(); err != nil {
		t.Errorf("stop b: %v", err)
	}
	out, err := runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir, "-database", pg, "-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-b"))
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
