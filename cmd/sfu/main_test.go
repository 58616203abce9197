package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/sfulink"
)

// startRun runs the binary's run with generated link certificates and
// returns the admin and link addresses, the link's PKI, and a function
// that stops it and returns run's result.
func startRun(t *testing.T, extra ...string) (admin, link string, p *testpki.Link, logs *syncbuf.Buffer, stop func() error) {
	t.Helper()
	p = testpki.NewLink(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncbuf.Buffer{}
	done := make(chan error, 1)
	args := append([]string{"-admin-listen", "127.0.0.1:0", "-link-listen", "127.0.0.1:0", "-media-udp-listen", "127.0.0.1:0", "-media-tcp-listen", "127.0.0.1:0",
		"-link-cert", p.NodeCert, "-link-key", p.NodeKey, "-link-client-ca", p.CA.File}, extra...)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, io.Discard, logs)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			cancel()
			t.Logf("sfu's log:\n%s", logs.String())
		}
	})
	eventually.True(t, 10*time.Second, "the listening lines", func() bool {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				switch m["server"] {
				case "admin":
					admin = m["addr"].(string)
				case "link":
					link = m["addr"].(string)
				}
			}
		}
		return admin != "" && link != ""
	})
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return admin, link, p, logs, stop
}

func TestStartsServesHealthAndStopsCleanly(t *testing.T) {
	addr, _, _, logs, stop := startRun(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run = %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatal("no stopped line")
	}
}

// TestSignalJoinsThroughTheLink: a signal-side client with a certificate
// of the link CA joins a room on the node; the node's load shows in the
// metrics; on shutdown the session hears that the node is going away.
func TestSignalJoinsThroughTheLink(t *testing.T) {
	admin, link, p, _, stop := startRun(t, "-max-participants", "1")
	tlsCfg, err := sfulink.ClientTLS(p.SignalCert, p.SignalKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sfulink.NewClient(t.Context(), sfulink.ClientConfig{URL: "wss://" + link + "/", TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev := &events{closed: make(chan error, 1)}
	if _, err := c.Join(ctx, "c_1", "m_1", ev); err != nil {
		t.Fatal(err)
	}
	if l := c.Load(); l.Participants != 1 || l.MaxParticipants != 1 {
		t.Fatalf("Load = %+v", l)
	}
	if _, err := c.Join(ctx, "c_2", "m_2", &events{closed: make(chan error, 1)}); !errors.Is(err, media.ErrFull) {
		t.Fatalf("second join on a node of one = %v, want ErrFull", err)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"sfu_participants 1", "sfu_links 1", "sfu_rooms 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("run = %v", err)
	}
	select {
	case err := <-ev.closed:
		if !errors.Is(err, media.ErrUnavailable) || !strings.Contains(err.Error(), "shutdown") {
			t.Fatalf("Closed(%v), want the node's shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not hear of the shutdown")
	}
}

func TestLinkRefusesClientOfAnotherCA(t *testing.T) {
	_, link, p, _, _ := startRun(t)
	other := testpki.NewLink(t)
	tlsCfg, err := sfulink.ClientTLS(other.SignalCert, other.SignalKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sfulink.NewClient(t.Context(), sfulink.ClientConfig{URL: "wss://" + link + "/", TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Join(ctx, "c_1", "m_1", &events{closed: make(chan error, 1)}); !errors.Is(err, media.ErrUnavailable) {
		t.Fatalf("join with a certificate of another CA = %v, want ErrUnavailable", err)
	}
}

type events struct{ closed chan error }

func (e *events) Answer(string)  {}
func (e *events) Offer(string)   {}
func (e *events) Speaker(string) {}
func (e *events) Closed(err error) {
	select {
	case e.closed <- err:
	default:
	}
}

func TestBadConfiguration(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-admin-listen", "off"}, nil, "-admin-listen"},
		{[]string{"-public-ip", "the-nat", "-link-cert", "c.pem", "-link-key", "k.pem", "-link-client-ca", "ca.pem"}, nil, "-public-ip"},
		{[]string{"-media-udp-listen", "off", "-link-cert", "c.pem", "-link-key", "k.pem", "-link-client-ca", "ca.pem"}, nil, "-media-udp-listen"},
		{nil, map[string]string{"SFU_LOG_FORMAT": "xml"}, "SFU_LOG_FORMAT"},
		{[]string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout"},
		{[]string{"-link-cert", "c.pem", "-link-key", "k.pem"}, nil, "-link-client-ca"},
		{[]string{"-link-client-ca", "ca.pem"}, nil, "-link-cert"},
		{[]string{"-link-listen", "off", "-link-cert", "c.pem", "-link-key", "k.pem", "-link-client-ca", "ca.pem"}, nil, "-link-listen"},
		{nil, map[string]string{"SFU_MAX_PARTICIPANTS": "-3"}, "SFU_MAX_PARTICIPANTS"},
		{[]string{"-link-cert", "/nonexistent.pem", "-link-key", "/nonexistent-key.pem", "-link-client-ca", "ca.pem"}, nil, "-link-cert"},
	}
	for _, tt := range tests {
		err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%v, %v) = %v, want mention of %s", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h = %v", err)
	}
	for _, w := range []string{"-admin-listen", "(default 127.0.0.1:9091)", "-link-listen", "(default :7443)", "-link-cert", "-link-key", "-link-client-ca", "-max-participants", "(default 200)", "-media-udp-listen", "(default :7882)", "-media-tcp-listen", "(default :7881)", "-public-ip", "-max-tracks", "-shutdown-timeout", "(default 15s)", "SFU_<FLAG>"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help lacks %q", w)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	s := newSettings(io.Discard)
	if err := s.load([]string{"-config", "../../deploy/sfu.toml"}, func(string) string { return "" }); err != nil {
		t.Fatalf("deploy/sfu.toml: %v", err)
	}
}
