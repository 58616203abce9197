package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/config"
)

type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func TestStartsServesHealthAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-admin-listen", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard, logs)
	}()

	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for line := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				addr = m["addr"].(string)
			}
		}
	}
	if addr == "" {
		t.Fatalf("no listening line:\n%s", logs.String())
	}
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatal("no stopped line")
	}
}

func TestBadConfiguration(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-admin-listen", "off"}, nil, "-admin-listen"},
		{nil, map[string]string{"SFU_LOG_FORMAT": "xml"}, "SFU_LOG_FORMAT"},
		{[]string{"-shutdown-timeout", "0s"}, nil, "-shutdown-timeout"},
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
	for _, w := range []string{"-admin-listen", "(default 127.0.0.1:9091)", "-shutdown-timeout", "(default 15s)", "SFU_<FLAG>"} {
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
