package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

func printTable(w io.Writer, rs []Result, o options) {
	ways := ""
	if o.echo {
		ways = ", both ways (the peer echoes through the relay; rates and loss count both directions, p50/p99 one way)"
	}
	fmt.Fprintf(w, "load: %d allocations x %d packets/s x %d bytes for %s%s\n\n", o.allocations, o.rate, o.size, o.duration, ways)
	fmt.Fprintf(w, "%-8s %12s %10s %8s %9s %9s", "server", "packets/s", "Mbit/s", "loss %", "p50 ms", "p99 ms")
	if o.echo {
		fmt.Fprintf(w, " %11s %11s", "rtt p50 ms", "rtt p99 ms")
	}
	fmt.Fprintf(w, " %10s %14s\n", "CPU s", "CPU s/Mpkt")
	for _, r := range rs {
		fmt.Fprintf(w, "%-8s %12.0f %10.2f %8.3f %9.3f %9.3f", r.Server, r.PacketsPerSec, r.Mbps, r.LossPercent, r.P50ms, r.P99ms)
		if o.echo {
			fmt.Fprintf(w, " %11.3f %11.3f", r.RoundTripP50ms, r.RoundTripP99ms)
		}
		mark := ""
		if r.Starved {
			mark = "  *"
		}
		fmt.Fprintf(w, " %10.2f %14.2f%s\n", r.CPUSeconds, r.CPUPerMillion, mark)
	}
	for _, r := range rs {
		if r.Starved {
			fmt.Fprintln(w, "* below 95 % of the offered rate: the load generator did not keep up (a busy machine) or packets were lost; not comparable")
			break
		}
	}
	last := rs[len(rs)-1]
	if last.Server != "coturn" || last.CPUPerMillion <= 0 {
		return
	}
	fmt.Fprintln(w)
	for _, r := range rs[:len(rs)-1] {
		fmt.Fprintf(w, "%s/coturn CPU per packet: %.2f (below 1 means turnd needs less CPU)\n", r.Server, r.CPUPerMillion/last.CPUPerMillion)
	}
}

// percentiles sorts d in place and returns its 50th and 99th percentiles
// in milliseconds.
func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	at := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	return at(0.50), at(0.99)
}

// printSummary prints, over several runs, each server's median CPU per
// million packets and every run's ratio to coturn's, sorted, with the
// runs in which a server was starved left out of both.
func printSummary(w io.Writer, runs [][]Result) {
	per := map[string][]float64{}
	ratios := map[string][]float64{}
	var names []string
	for _, rs := range runs {
		var ref *Result
		for i := range rs {
			if rs[i].Server == "coturn" && !rs[i].Starved && rs[i].CPUPerMillion > 0 {
				ref = &rs[i]
			}
		}
		for _, r := range rs {
			if !slices.Contains(names, r.Server) {
				names = append(names, r.Server)
			}
			if r.Starved {
				continue
			}
			per[r.Server] = append(per[r.Server], r.CPUPerMillion)
			if ref != nil && r.Server != "coturn" {
				ratios[r.Server] = append(ratios[r.Server], r.CPUPerMillion/ref.CPUPerMillion)
			}
		}
	}
	fmt.Fprintf(w, "over %d runs (starved runs left out):\n", len(runs))
	for _, name := range names {
		v := per[name]
		slices.Sort(v)
		fmt.Fprintf(w, "%-8s CPU s/Mpkt median %s of %d runs", name, median(v), len(v))
		if q := ratios[name]; len(q) > 0 {
			slices.Sort(q)
			fmt.Fprintf(w, "; /coturn per run:")
			for _, x := range q {
				fmt.Fprintf(w, " %.2f", x)
			}
			fmt.Fprintf(w, " (median %s)", median(q))
		}
		fmt.Fprintln(w)
	}
}

// median formats the median of sorted values, or "-" for none.
func median(v []float64) string {
	switch n := len(v); {
	case n == 0:
		return "-"
	case n%2 == 1:
		return fmt.Sprintf("%.2f", v[n/2])
	default:
		return fmt.Sprintf("%.2f", (v[n/2-1]+v[n/2])/2)
	}
}
