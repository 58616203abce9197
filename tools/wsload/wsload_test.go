package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openconsult/openconsult/internal/obs"
)

func TestScrapeReadsTheServersRuntimeMetrics(t *testing.T) {
	reg := obs.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_value", Help: "a value"})
	reg.MustRegister(g)
	g.Set(42.5)
	srv := httptest.NewServer(obs.MetricsHandler(reg))
	defer srv.Close()
	got, err := scrape(context.Background(), srv.URL, "test_value", "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 42.5 || got[1] < 1 {
		t.Fatalf("scraped %v", got)
	}
	if _, err := scrape(context.Background(), srv.URL, "no_such_metric"); err == nil {
		t.Fatal("a missing metric was not reported")
	}
}

func TestForEachStopsAtTheFirstError(t *testing.T) {
	calls := 0
	err := forEach(context.Background(), 100, 1, func(_ context.Context, i int) error {
		calls++
		if i == 3 {
			return http.ErrAbortHandler
		}
		return nil
	})
	if err != http.ErrAbortHandler || calls > 5 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

// TestIdleSocketsAgainstSignal runs a small load against a signal binary
// named by WSLOAD_SIGNAL (make build writes ./bin/signal).
func TestIdleSocketsAgainstSignal(t *testing.T) {
	bin := os.Getenv("WSLOAD_SIGNAL")
	if bin == "" {
		t.Skip("WSLOAD_SIGNAL names no signal binary")
	}
	r, err := run(t.Context(), options{signal: bin, sockets: 20, consults: 2, workers: 4, settle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 || r.GoroutinesPerSocket <= 0 || r.RSSAfterMiB <= 0 {
		t.Fatalf("figures %+v", r)
	}
}
