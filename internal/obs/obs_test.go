package obs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReadyNamesFailingChecksWithoutDetails(t *testing.T) {
	var logs bytes.Buffer
	log, _ := NewLogger(&logs, "info", "json")
	h := NewHealth(log, time.Second)
	h.AddCheck("database", func(context.Context) error { return nil })
	h.AddCheck("sfu", func(context.Context) error { return errors.New("dial 10.0.0.7:7000: refused") })

	rec := httptest.NewRecorder()
	h.Ready(rec, httptest.NewRequest("GET", "/readyz", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d", rec.Code)
	}
	if !strings.Contains(body, `"sfu":"failing"`) || !strings.Contains(body, `"database":"ok"`) {
		t.Fatalf("body = %s", body)
	}
	if strings.Contains(body, "10.0.0.7") {
		t.Fatal("readiness response leaks error details")
	}
	if !strings.Contains(logs.String(), "10.0.0.7") {
		t.Fatal("error details missing from the log")
	}
}

func TestReadyNamesADrainingCheck(t *testing.T) {
	h := NewHealth(slogDiscard(), time.Second)
	h.AddCheck("relay", func(context.Context) error { return fmt.Errorf("relay: %w", ErrDraining) })
	rec := httptest.NewRecorder()
	h.Ready(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"relay":"draining"`) {
		t.Fatalf("code %d, body %s; want 503 naming the relay draining", rec.Code, rec.Body.String())
	}
}

func TestReadyCheckTimesOut(t *testing.T) {
	h := NewHealth(slogDiscard(), 20*time.Millisecond)
	h.AddCheck("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	rec := httptest.NewRecorder()
	h.Ready(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d", rec.Code)
	}
}

func TestHTTPMetricsLabelByPatternAndBoundedMethod(t *testing.T) {
	reg := NewRegistry()
	m := NewHTTPMetrics(reg, "site")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /j/{token}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	h := m.Wrap(mux)
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/j/secret-token-1", nil),
		httptest.NewRequest("GET", "/j/secret-token-2", nil),
		httptest.NewRequest("BREW", "/coffee", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET /j/{token}", "GET", "410")); got != 2 {
		t.Fatalf("pattern counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("unmatched", "other", "404")); got != 1 {
		t.Fatalf("unknown method counter = %v, want 1", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if strings.Contains(l.GetValue(), "secret-token") || l.GetValue() == "BREW" {
					t.Fatalf("label %s=%q carries request data", l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestNewLoggerRejectsUnknownValues(t *testing.T) {
	if _, err := NewLogger(io.Discard, "loud", "json"); err == nil {
		t.Error("unknown level accepted")
	}
	if _, err := NewLogger(io.Discard, "info", "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func slogDiscard() *slog.Logger {
	l, _ := NewLogger(io.Discard, "error", "json")
	return l
}
