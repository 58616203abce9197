// Command replicaload measures signal replicas sharing the live consults:
// it starts two `signal -dev` processes on one PostgreSQL (a schema of its
// own, dropped afterwards) and one Redis, creates consults, and opens each
// consult's clinician tab on one replica and its patient's tab on the
// other, so that every consult is split and every chat message crosses
// replicas. With every patient admitted, the members take turns sending
// chat at -rate messages a second for -duration; it prints the fan-out
// latency from a send to the other member's receipt (p50, p90, p99, max),
// and each replica's resident memory and goroutines.
//
//	go run ./tools/replicaload -signal ./bin/signal -sockets 10000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

type options struct {
	signal   string
	database string
	redis    string
	sockets  int
	workers  int
	rate     int
	duration time.Duration
	warmup   time.Duration
	together bool
}

// Result is one run's figures.
type Result struct {
	Sockets   int       `json:"sockets"`
	Consults  int       `json:"consults"`
	Rate      int       `json:"rate_per_second"`
	Seconds   float64   `json:"seconds"`
	Sent      int       `json:"sent"`
	Delivered int       `json:"delivered"`
	P50ms     float64   `json:"p50_ms"`
	P90ms     float64   `json:"p90_ms"`
	P99ms     float64   `json:"p99_ms"`
	MaxMs     float64   `json:"max_ms"`
	Together  bool      `json:"together"`
	Replicas  []Replica `json:"replicas"`
	Dropped   int       `json:"sockets_dropped"`
	SetupSecs float64   `json:"setup_seconds"`
}

// Replica is one signal process's figures at the end of the run.
type Replica struct {
	Tabs       int     `json:"tabs"` // the WebSockets it holds
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines float64 `json:"goroutines"`
}

func main() {
	o, jsonOut, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "replicaload:", err)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicaload:", err)
		os.Exit(1)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printTable(os.Stdout, r)
	}
	if r.Dropped > 0 || r.Delivered < r.Sent {
		fmt.Fprintln(os.Stderr, "replicaload: sockets were closed or messages lost; see the figures above")
		os.Exit(3)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, bool, error) {
	var o options
	fs := flag.NewFlagSet("replicaload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print JSON instead of a table")
	fs.StringVar(&o.signal, "signal", "./bin/signal", "path of the signal binary to start with -dev")
	fs.StringVar(&o.database, "database", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL `URL`; the run works in a schema of its own and drops it")
	fs.StringVar(&o.redis, "redis", "redis://127.0.0.1:6379/0", "Redis `URL` the replicas share")
	fs.IntVar(&o.sockets, "sockets", 2000, "WebSockets to open, two per consult (clinician and patient)")
	fs.IntVar(&o.workers, "workers", 16, "tabs joining at the same time")
	fs.IntVar(&o.rate, "rate", 200, "chat messages sent per second, over all consults")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long chat is sent")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "chat sent before the measurement")
	fs.BoolVar(&o.together, "together", false, "baseline: open both tabs of a consult on the replica that owns it, so that nothing crosses replicas")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	switch {
	case o.sockets < 2 || o.sockets > 40000 || o.sockets%2 != 0:
		return o, false, errors.New("-sockets: an even number from 2 to 40000")
	case o.workers < 1 || o.workers > 256:
		return o, false, errors.New("1 <= -workers <= 256")
	case o.rate < 1 || o.rate > 5000:
		return o, false, errors.New("1 <= -rate <= 5000")
	case o.duration <= 0 || o.duration > time.Hour, o.warmup < 0 || o.warmup > time.Minute:
		return o, false, errors.New("-duration in (0, 1h], -warmup in [0, 1m]")
	}
	return o, *jsonOut, nil
}

func printTable(w io.Writer, r Result) {
	split := "each split over both"
	if r.Together {
		split = "each on one replica (baseline)"
	}
	fmt.Fprintf(w, "load: %d WebSockets on 2 replicas, %d consults %s; chat at %d/s for %.0f s (setup %.0f s)\n\n",
		r.Sockets, r.Consults, split, r.Rate, r.Seconds, r.SetupSecs)
	fmt.Fprintf(w, "%10s %10s %10s %10s %10s %10s\n", "sent", "delivered", "p50 ms", "p90 ms", "p99 ms", "max ms")
	fmt.Fprintf(w, "%10d %10d %10.1f %10.1f %10.1f %10.1f\n", r.Sent, r.Delivered, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	fmt.Fprintf(w, "\n%8s %8s %10s %12s\n", "replica", "tabs", "RSS MiB", "goroutines")
	for i, rp := range r.Replicas {
		fmt.Fprintf(w, "%8d %8d %10.1f %12.0f\n", i+1, rp.Tabs, rp.RSSMiB, rp.Goroutines)
	}
	fmt.Fprintln(w, "\nLatency: from a member's send to the other member's receipt, through the replica the sender is on, Redis, and the other.")
	if r.Dropped > 0 {
		fmt.Fprintf(w, "%d sockets were closed by a server during the run.\n", r.Dropped)
	}
}
