// Package firefoxtest starts Debian's Firefox ESR for end-to-end tests and
// drives it over WebDriver BiDi: headless, its own empty profile per
// browser, no permission prompts, and no background traffic to the
// internet. It is the second browser engine the media node is checked
// against, beside Chromium (internal/browsertest).
package firefoxtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// firefoxPaths are where Debian and other distributions install it.
var firefoxPaths = []string{"/usr/bin/firefox-esr", "/usr/bin/firefox"}

// prefs make a test profile: permissions granted without a prompt, and
// nothing fetched from the internet.
const prefs = `user_pref("media.navigator.permission.disabled", true);
user_pref("media.navigator.streams.fake", true);
user_pref("media.peerconnection.ice.obfuscate_host_addresses", false);
user_pref("media.peerconnection.ice.loopback", true);
user_pref("app.update.auto", false);
user_pref("app.normandy.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("remote.active-protocols", 1);
`

// Find returns the browser binary. Without one, the test is skipped on a
// developer's machine and fails under CI, where .ci/run installs it.
func Find(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FIREFOX"); p != "" {
		return p
	}
	for _, p := range firefoxPaths {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Firefox found; install Debian's firefox-esr package")
	}
	t.Skip("no Firefox found; install Debian's firefox-esr package to run its tests")
	return ""
}

// Firefox is one browser with one tab.
type Firefox struct {
	conn    *websocket.Conn
	context string // the tab's browsing context

	wmu sync.Mutex // one writer on the socket
	mu  sync.Mutex
	id  int
	// pending are the commands sent, by id, waiting for their result.
	pending map[int]chan result
	done    chan struct{} // the reader ended
}

type result struct {
	raw json.RawMessage
	err error
}

var listening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// New starts a browser and opens url in its tab. It stops when the test
// ends.
func New(t testing.TB, url string) *Firefox {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user.js"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Find(t), "--headless", "--no-remote", "--profile", dir, "--remote-debugging-port=0", "about:blank")
	cmd.SysProcAttr = procAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start firefox: %v", err)
	}
	stopped := make(chan struct{})
	t.Cleanup(func() {
		kill(cmd.Process)
		<-stopped
	})
	found := make(chan string, 1)
	go func() {
		defer close(stopped)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	var ws string
	select {
	case ws = <-found:
	case <-time.After(60 * time.Second):
		t.Fatal("firefox did not start WebDriver BiDi within 60s")
	}
	conn, _, err := websocket.DefaultDialer.Dial(ws+"/session", nil)
	if err != nil {
		t.Fatalf("webdriver bidi: %v", err)
	}
	f := &Firefox{conn: conn, pending: map[int]chan result{}, done: make(chan struct{})}
	go f.read()
	t.Cleanup(func() {
		_ = conn.Close()
		<-f.done
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}); err != nil {
		t.Fatalf("firefox session: %v", err)
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	raw, err := f.call(ctx, "browsingContext.getTree", map[string]any{})
	if err == nil {
		err = json.Unmarshal(raw, &tree)
	}
	if err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("firefox tab: %v (%s)", err, raw)
	}
	f.context = tree.Contexts[0].Context
	if _, err := f.call(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"}); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return f
}

// read hands each command's result to its caller; events are dropped.
func (f *Firefox) read() {
	defer close(f.done)
	for {
		var m struct {
			ID      *int            `json:"id"`
			Type    string          `json:"type"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := f.conn.ReadJSON(&m); err != nil {
			f.mu.Lock()
			for id, ch := range f.pending {
				ch <- result{err: fmt.Errorf("webdriver bidi: %w", err)}
				delete(f.pending, id)
			}
			f.mu.Unlock()
			return
		}
		if m.ID == nil {
			continue
		}
		r := result{raw: m.Result}
		if m.Type == "error" {
			r.err = fmt.Errorf("webdriver bidi: %s: %s", m.Error, m.Message)
		}
		f.mu.Lock()
		ch := f.pending[*m.ID]
		delete(f.pending, *m.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

func (f *Firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan result, 1)
	f.mu.Lock()
	f.id++
	id := f.id
	f.pending[id] = ch
	f.mu.Unlock()
	f.wmu.Lock()
	err := f.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	f.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("webdriver bidi: %w", err)
	}
	select {
	case r := <-ch:
		return r.raw, r.err
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.pending, id)
		f.mu.Unlock()
		return nil, ctx.Err()
	}
}

// ErrScript is returned when the page's script threw.
var ErrScript = errors.New("script failed")

// Eval runs expression in the tab, awaits it if it is a promise, and
// stores its value, serialised as JSON by the page, in out (which may be
// nil).
func (f *Firefox) Eval(ctx context.Context, expression string, out any) error {
	js := "(async () => JSON.stringify(await (" + expression + ")))()"
	raw, err := f.call(ctx, "script.evaluate", map[string]any{"expression": js, "awaitPromise": true,
		"target": map[string]any{"context": f.context}, "resultOwnership": "none"})
	if err != nil {
		return err
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("script result: %w", err)
	}
	if r.Type != "success" {
		return fmt.Errorf("%w: %s", ErrScript, r.ExceptionDetails.Text)
	}
	if out == nil || r.Result.Type != "string" {
		return nil
	}
	return json.Unmarshal([]byte(r.Result.Value), out)
}
