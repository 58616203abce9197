package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
	"github.com/openconsult/openconsult/store/storetest"
)

// replica is a signal process of a test.
type replica struct {
	*devServer
	cmd  *exec.Cmd
	kill func()
}

// startReplica runs signal -dev in a process of its own on ephemeral ports
// with the extra flags.
func startReplica(t *testing.T, name, dataDir string, extra ...string) *replica {
	t.Helper()
	args := append([]string{"-dev", "-data-dir", dataDir}, ephemeralListeners()...)
	args = append(args, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunSignal+"=1")
	d := &devServer{stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitOnce sync.Once
	var waitErr error
	wait := func(within time.Duration) error {
		waitOnce.Do(func() {
			select {
			case waitErr = <-exited:
			case <-time.After(within):
				_ = cmd.Process.Kill()
				waitErr = errors.Join(errors.New("did not stop"), <-exited)
			}
		})
		return waitErr
	}
	r := &replica{devServer: d, cmd: cmd}
	d.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return wait(30 * time.Second)
	}
	r.kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = wait(10 * time.Second)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("replica %s's log:\n%s", name, d.stderr.String())
		}
	})
	eventually.True(t, 60*time.Second, "replica "+name+" to start", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("replica %s exited: %v\n%s", name, err, d.stderr.String())
		default:
		}
		return strings.Contains(d.stdout.String(), "OpenConsult is running")
	})
	d.public = regexp.MustCompile(`Open (https://\S+)`).FindStringSubmatch(d.stdout.String())[1]
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "dev-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return r
}

// tab is a call page's WebSocket, read on a goroutine of its own so that
// a test can wait for a message or for the server to close it.
type tab struct {
	ws     *websocket.Conn
	msgs   chan map[string]any
	closed chan struct{}
}

func openTab(t *testing.T, l *liveServer, c *http.Client, consultID string) *tab {
	t.Helper()
	ws, code := l.dialCall(t, c, consultID)
	if ws == nil {
		t.Fatalf("call page refused by %s: %d", l.public, code)
	}
	tb := &tab{ws: ws, msgs: make(chan map[string]any, 256), closed: make(chan struct{})}
	go func() {
		defer close(tb.closed)
		for {
			var m map[string]any
			if err := ws.ReadJSON(&m); err != nil {
				return
			}
			tb.msgs <- m
		}
	}()
	return tb
}

// next returns the first message of type want, failing when the tab closes
// or it does not come within 30 s.
func (tb *tab) next(t *testing.T, want string) map[string]any {
	t.Helper()
	m, ok := tb.wait(want, 30*time.Second)
	if !ok {
		t.Fatalf("no %q message", want)
	}
	return m
}

func (tb *tab) wait(want string, within time.Duration) (map[string]any, bool) {
	deadline := time.After(within)
	for {
		select {
		case m := <-tb.msgs:
			if m["type"] == want {
				return m, true
			}
		case <-tb.closed:
			for {
				select {
				case m := <-tb.msgs:
					if m["type"] == want {
						return m, true
					}
				default:
					return nil, false
				}
			}
		case <-deadline:
			return nil, false
		}
	}
}

// send writes a message to the server.
func (tb *tab) send(t *testing.T, m map[string]any) {
	t.Helper()
	if err := tb.ws.WriteJSON(m); err != nil {
		t.Fatalf("send %v: %v", m["type"], err)
	}
}

// gone waits until the server or the network closed the tab.
func (tb *tab) gone(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-tb.closed:
	case <-time.After(within):
		t.Fatalf("the tab was not closed within %s", within)
	}
}

// reconnect opens the tab again, as the call page does after its socket
// closed, until a server welcomes it.
func reconnect(t *testing.T, l *liveServer, c *http.Client, consultID string) *tab {
	t.Helper()
	var tb *tab
	eventually.True(t, 40*time.Second, "a server to welcome the reconnected tab", func() bool {
		tb = openTab(t, l, c, consultID)
		if _, ok := tb.wait("welcome", 15*time.Second); ok {
			return true
		}
		tb.ws.Close()
		return false
	})
	return tb
}

// chatFrom returns the first chat message with the text.
func chatFrom(tb *tab, t *testing.T, text string) map[string]any {
	t.Helper()
	for {
		m := tb.next(t, "chat")
		if m["text"] == text {
			return m
		}
	}
}

// TestReplicasShareAConsult is the split consult on two signal replicas of
// one PostgreSQL and one Redis: the clinician's tab on one, the patient's
// on the other. The patient waits in the lobby the clinician sees, is
// admitted, chat goes both ways, a document shared on one replica is
// announced on the other. Then the owner is killed outright: the tabs
// reconnect to the survivor, which takes the consult over, and the patient
// is back in the call without the lobby, with the chat so far. A third
// replica, which does not own the consult, ends it for everyone. The audit
// log verifies afterwards.
func TestReplicasShareAConsult(t *testing.T) {
	pg := storetest.NewPostgresSchema(t)
	redisURL, _, _ := redistest.Open(t)
	dir := t.TempDir()
	if out, err := runTool(t, nil, "audit", "keygen", "-dev", "-data-dir", dir, "-audit-key-file", filepath.Join(dir, "audit-signing.key")); err != nil {
		t.Fatalf("audit keygen: %v\n%s", err, out)
	}
	shared := []string{"-database", pg, "-redis", redisURL, "-turn-secret", "a shared turn secret for the test"}
	start := func(name string) *replica {
		return startReplica(t, name, dir, append([]string{"-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-"+name)}, shared...)...)
	}
	a := start("a")
	// The first administrator exists before b starts, which would
	// otherwise replace a's setup link with its own.
	createFirstAdmin(t, a.devServer, "chief.admin", "a long admin passphrase")
	b := start("b")
	onA := &liveServer{devServer: a.devServer, dir: dir, admin: signInHTTP(t, a.devServer, "chief.admin", "a long admin passphrase")}
	onB := &liveServer{devServer: b.devServer, dir: dir}
	doc, _ := onA.clinician(t, "dr.split")
	consult := onA.startConsult(t, doc)
	pat := onA.guest(t, consult.link, nil)

	// The clinician opens the call on a, which takes the consult.
	docTab := openTab(t, onA, doc, consult.id)
	docTab.next(t, "admitted")
	// The patient lands on b and waits in the lobby the clinician sees.
	patTab := openTab(t, onB, pat, consult.id)
	welcome := patTab.next(t, "welcome")
	if welcome["state"] != "lobby" {
		t.Fatalf("patient's welcome = %v", welcome)
	}
	if w := patTab.next(t, "waiting"); w["clinician"] != true {
		t.Fatalf("waiting = %v, want the clinician connected", w)
	}
	guestID := welcome["member"].(string)
	eventually.True(t, 30*time.Second, "the patient in the clinician's lobby", func() bool {
		m, ok := docTab.wait("lobby", 30*time.Second)
		return ok && strings.Contains(fmt.Sprint(m["waiting"]), guestID)
	})
	docTab.send(t, map[string]any{"type": "admit", "member": guestID})
	patTab.next(t, "admitted")

	patTab.send(t, map[string]any{"type": "chat", "text": "hello from the patient on b"})
	chatFrom(docTab, t, "hello from the patient on b")
	docTab.send(t, map[string]any{"type": "chat", "text": "hello from the clinician on a"})
	chatFrom(patTab, t, "hello from the clinician on a")

	pdf := append([]byte("%PDF-1.7\n"), make([]byte, 2000)...)
	if status, id, _ := upload(t, b.devServer, pat, consult.id, pdf); status != http.StatusCreated {
		t.Fatalf("the patient's upload on b = %d %s", status, id)
	}
	for m := docTab.next(t, "chat"); m["file"] == nil; m = docTab.next(t, "chat") {
	}

	// The owner dies mid-call.
	a.kill()
	docTab.gone(t, 10*time.Second)
	patTab.gone(t, 30*time.Second)
	// The patient is back first: admitted without anyone to admit them.
	patTab = reconnect(t, onB, pat, consult.id)
	admitted := patTab.next(t, "admitted")
	if chat := fmt.Sprint(admitted["chat"]); !strings.Contains(chat, "hello from the patient on b") || !strings.Contains(chat, "hello from the clinician on a") {
		t.Fatalf("chat after the takeover = %s", chat)
	}
	docTab = reconnect(t, onB, doc, consult.id)
	docTab.next(t, "admitted")
	patTab.send(t, map[string]any{"type": "chat", "text": "still here after the move"})
	chatFrom(docTab, t, "still here after the move")

	// A replica that does not own the consult ends it for everyone.
	c := start("c")
	resp, _ := postForm(t, doc, c.public+"/consults/"+consult.id+"/end", nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/consults" {
		t.Fatalf("end on c = %d at %s", resp.StatusCode, resp.Request.URL)
	}
	patTab.next(t, "ended")
	docTab.next(t, "ended")

	for _, r := range []*replica{b, c} {
		if err := r.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	out, err := runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir, "-database", pg,
		"-audit-checkpoint-dir", filepath.Join(dir, "checkpoints-b"), "-checkpoint", filepath.Join(dir, "checkpoints-c", "checkpoints"))
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// On PostgreSQL, which several replicas share, the audit signing key is
// never made at start (each replica would make its own): a server without
// it refuses to start and says how to make it; keygen never replaces one.
func TestPostgresNeedsTheAuditKeyMadeOnce(t *testing.T) {
	pg := storetest.NewPostgresSchema(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"-dev", "-data-dir", dir, "-database", pg}, ephemeralListeners()...)
	err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "signal audit keygen") {
		t.Fatalf("start on PostgreSQL without an audit key = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit-signing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key was made at start: %v", err)
	}
	key := filepath.Join(dir, "audit-signing.key")
	if out, err := runTool(t, nil, "audit", "keygen", "-dev", "-data-dir", dir, "-audit-key-file", key); err != nil || !strings.Contains(out, "verifier key") {
		t.Fatalf("keygen = %q, %v", out, err)
	}
	before, _ := os.ReadFile(key)
	if _, err := runTool(t, nil, "audit", "keygen", "-dev", "-data-dir", dir, "-audit-key-file", key); err == nil {
		t.Fatal("keygen replaced an existing key")
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("the key changed")
	}
}
