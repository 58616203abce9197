// Command wsload measures what idle signaling WebSockets cost the server.
// It starts a `signal -dev` child, has a clinician create consults, and has
// guests redeem the consults' patient links from their own loopback
// addresses and open their WebSockets, exactly as the join page does; the
// guests then wait in the lobby, answering the server's heartbeats and
// sending nothing. It prints the server process's resident memory, Go heap
// and goroutines per socket, each the difference between the server with
// the guests' sessions but no sockets and the server with every socket
// open and idle, read from /proc and from the server's /metrics. Idle
// figures are the lowest of samples taken each second over a heartbeat
// period (10 s) after -settle; the peak goroutines count the pings being
// written. The load generator runs in this process, so none of its
// memory is counted.
//
//	go run ./tools/wsload -signal ./bin/signal -sockets 2000
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
	sockets  int
	consults int
	workers  int
	settle   time.Duration
}

// Result is one run's figures.
type Result struct {
	Sockets             int     `json:"sockets"`
	Consults            int     `json:"consults"`
	SettleSeconds       float64 `json:"settle_seconds"`
	RSSBeforeMiB        float64 `json:"rss_before_mib"`
	RSSAfterMiB         float64 `json:"rss_after_mib"`
	KiBPerSocket        float64 `json:"rss_kib_per_socket"`
	HeapBeforeMiB       float64 `json:"heap_inuse_before_mib"`
	HeapAfterMiB        float64 `json:"heap_inuse_after_mib"`
	HeapKiBPerSocket    float64 `json:"heap_inuse_kib_per_socket"`
	StackKiBPerSocket   float64 `json:"stack_inuse_kib_per_socket"`
	GoroutinesBefore    float64 `json:"goroutines_before"`
	GoroutinesAfter     float64 `json:"goroutines_after"`
	GoroutinesPerSocket float64 `json:"goroutines_per_socket"`
	// PeakGoroutinesPerSocket counts the writers of heartbeats in flight.
	PeakGoroutinesPerSocket float64 `json:"peak_goroutines_per_socket"`
	Dropped                 int     `json:"sockets_dropped"`
}

func main() {
	o, jsonOut, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "wsload:", err)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printTable(os.Stdout, r)
	}
	if r.Dropped > 0 {
		// A socket the server closed during the idle time was not idle
		// for the whole measurement.
		fmt.Fprintln(os.Stderr, "wsload: the server closed some sockets; see the figures above")
		os.Exit(3)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, bool, error) {
	var o options
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print JSON instead of a table")
	fs.StringVar(&o.signal, "signal", "./bin/signal", "path of the signal binary to start with -dev")
	fs.IntVar(&o.sockets, "sockets", 2000, "idle guest WebSockets to open")
	fs.IntVar(&o.consults, "consults", 20, "consults the guests are spread over")
	fs.IntVar(&o.workers, "workers", 16, "guests joining at the same time")
	fs.DurationVar(&o.settle, "settle", 20*time.Second, "idle time with every socket open before measuring (more than the 10 s heartbeat)")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	switch {
	case o.sockets < 1 || o.sockets > 50000:
		return o, false, errors.New("1 <= -sockets <= 50000")
	case o.consults < 1 || o.consults > o.sockets:
		return o, false, errors.New("1 <= -consults <= -sockets")
	case o.workers < 1 || o.workers > 256:
		return o, false, errors.New("1 <= -workers <= 256")
	case o.settle < 0 || o.settle > 10*time.Minute:
		return o, false, errors.New("0 <= -settle <= 10m")
	}
	return o, *jsonOut, nil
}

func printTable(w io.Writer, r Result) {
	fmt.Fprintf(w, "load: %d idle guest WebSockets in the lobbies of %d consults, measured over %.0f s after %.0f s idle\n\n", r.Sockets, r.Consults, heartbeatWindow.Seconds(), r.SettleSeconds)
	fmt.Fprintf(w, "%12s %12s %12s %12s %12s %12s %14s %14s\n", "RSS MiB", "+RSS MiB", "KiB/socket", "heap KiB/s", "stack KiB/s", "goroutines", "goroutines/s", "peak gor./s")
	fmt.Fprintf(w, "%12.1f %12.1f %12.1f %12.1f %12.1f %12.0f %14.2f %14.2f\n",
		r.RSSAfterMiB, r.RSSAfterMiB-r.RSSBeforeMiB, r.KiBPerSocket, r.HeapKiBPerSocket, r.StackKiBPerSocket, r.GoroutinesAfter, r.GoroutinesPerSocket, r.PeakGoroutinesPerSocket)
	fmt.Fprintln(w, "\nMemory and goroutines are the signal process's, after minus before the sockets opened.")
	if r.Dropped > 0 {
		fmt.Fprintf(w, "%d sockets were closed by the server while idle.\n", r.Dropped)
	}
}
