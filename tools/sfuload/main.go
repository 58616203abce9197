// Command sfuload measures the selective forwarding unit under load. Its
// participants are pion peer connections that join through the real
// signaling path of a `signal -dev` it starts (accounts, consult links,
// the lobby, WebSockets, `sfu-join`), publish Opus-like audio at 50
// packets/s and VP8 simulcast video at a set bitrate, and read everything
// the SFU forwards to them. Each payload carries a send timestamp and a
// per-stream sequence, so the subscribers measure forwarding latency and
// loss themselves.
//
// Scenarios: -scenario rooms runs N consults of three members who all
// publish; -scenario grandrounds runs one presenter to N receive-only
// subscribers. It prints forwarded packets/s and Mbit/s, the SFU's CPU
// seconds per million forwarded packets, latency percentiles, loss (the
// pause of a simulcast layer the node switched a subscriber away from is
// counted as a layer switch, not as loss), memory per subscriber, the
// steady-state memory and goroutines per participant, and
// join-to-first-frame time, as a table or with
// -json as JSON. A run in which some subscription received no media prints
// its figures and exits with status 3.
//
// With -direct the participants join a media node through the media.Node
// interface instead, which measures the SFU core without signaling; the
// node runs in a child process (this program with -serve-node), so the
// CPU and memory figures are the node's alone. -udp-listen gives that
// node one UDP port for every participant, as cmd/sfu runs, instead of a
// port each. With -direct -record the node also records every consult,
// through its recorder, into a sink that assembles WebM-sized frames and
// discards them: sfuload measures the node for one window without
// recordings, starts them, and prints what they add per consult (CPU,
// memory) and what they received (packets, bytes, sequence gaps). In
// -direct the node's process also counts its heap allocations per
// forwarded packet, and -node-profile writes its CPU profile of the
// measured window and heap profiles of the window's start and end.
//
//	go run ./tools/sfuload -signal ./bin/signal -scenario rooms -rooms 10 -duration 20s
//	go run ./tools/sfuload -signal ./bin/signal -scenario grandrounds -subscribers 40
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
	"runtime"
	"strconv"
	"strings"
	"time"
)

type options struct {
	scenario    string
	rooms       int
	subscribers int
	videoKbps   int
	simulcast   bool
	layers      []layer
	duration    time.Duration
	warmup      time.Duration
	joinTimeout time.Duration
	turnd       string // turnd binary measured after the node, or empty
	view        [2]int // display size sent for each publisher; 0x0 sends none
	direct      bool
	udpListen   string // -direct: the node's one UDP port for everyone; empty for a port each
	// ownTransport runs the node of -direct on its own transport
	// (media.Config.OwnTransport) on udpListen.
	ownTransport bool
	inProcess    bool   // -direct with the node in this process, for tests
	record       bool   // -direct: the node records every consult
	nodeProfile  string // -direct: path prefix of the node's CPU and heap profiles of the window
	signal       string
	signalArgs   []string
}

// Result is one run's figures.
type Result struct {
	Mode             string  `json:"mode"` // "signal" or "direct"
	Scenario         string  `json:"scenario"`
	Rooms            int     `json:"rooms"`
	Publishers       int     `json:"publishers"`
	Subscribers      int     `json:"subscribers"`
	Subscriptions    int     `json:"subscriptions"` // (subscriber, publisher) pairs
	VideoKbps        int     `json:"video_kbps"`
	Simulcast        bool    `json:"simulcast"`
	Seconds          float64 `json:"seconds"`
	PacketsSent      int64   `json:"packets_sent"`
	PacketsForwarded int64   `json:"packets_forwarded"`
	PacketsPerSec    float64 `json:"forwarded_packets_per_second"`
	Mbps             float64 `json:"forwarded_mbit_per_second"`
	LossPercent      float64 `json:"loss_percent"`
	// LayerSwitches are the changes of simulcast layer the subscribers
	// saw; the pause of a layer switched away from is not loss.
	LayerSwitches int64   `json:"layer_switches"`
	P50ms         float64 `json:"latency_p50_ms"`
	P95ms         float64 `json:"latency_p95_ms"`
	P99ms         float64 `json:"latency_p99_ms"`
	CPUProcess    string  `json:"cpu_process"`
	CPUSeconds    float64 `json:"sfu_cpu_seconds"`
	CPUPerMillion float64 `json:"sfu_cpu_seconds_per_million_packets"`
	// AllocsPerPacket are the heap allocations of the node's process over
	// the window per forwarded packet (-direct, the node in its own
	// process): pion's receive and send paths and the node's own.
	AllocsPerPacket float64 `json:"sfu_allocations_per_forwarded_packet,omitempty"`
	// LoadCPUSeconds is this program's own CPU time over the window (in
	// -direct with the node in process, the node's too): with the SFU it
	// shows how close the machine was to saturation.
	LoadCPUSeconds float64 `json:"load_generator_cpu_seconds"`
	// MachineBusyPercent is the whole machine's CPU use over the window,
	// and OtherCPUSeconds the part neither the SFU's process nor this
	// program used: other work that disturbed the run.
	MachineBusyPercent float64 `json:"machine_cpu_busy_percent"`
	OtherCPUSeconds    float64 `json:"other_cpu_seconds"`
	RSSBeforeMiB       float64 `json:"rss_before_mib"`
	RSSAfterMiB        float64 `json:"rss_after_mib"`
	RSSDeltaMiB        float64 `json:"rss_delta_mib"`
	KiBPerSubscriber   float64 `json:"memory_per_subscriber_kib"`
	// HeldKiBPerSubscriber is the growth of the node's anonymous resident
	// memory from before the first join to the window's end, each read
	// after a collection that returned the free pages to the system
	// (heldMemory), per subscriber: the steady state, without the
	// collector's headroom or the program's code paged in.
	// Heap and stacks are its two main parts, from the runtime.
	HeldKiBPerSubscriber  float64 `json:"held_memory_per_subscriber_kib,omitempty"`
	HeapKiBPerSubscriber  float64 `json:"heap_per_subscriber_kib,omitempty"`
	StackKiBPerSubscriber float64 `json:"stacks_per_subscriber_kib,omitempty"`
	// Participants are the members joined; the steady-state figures are
	// the node's growth from before the first join to the start of the
	// measured window (every member joined, media flowing, warm-up over),
	// divided by them. Goroutines are counted in -direct only.
	Participants             int     `json:"participants"`
	SteadyKiBPerParticipant  float64 `json:"steady_memory_per_participant_kib"`
	GoroutinesPerParticipant float64 `json:"goroutines_per_participant,omitempty"`
	JoinP50ms                float64 `json:"join_to_first_frame_p50_ms"`
	JoinP95ms                float64 `json:"join_to_first_frame_p95_ms"`
	JoinMaxms                float64 `json:"join_to_first_frame_max_ms"`
	FirstFrameMissing        int     `json:"subscribers_without_first_frame"`
	// IncompleteSubscriptions lacked audio or video in the window.
	IncompleteSubscriptions int              `json:"subscriptions_without_audio_or_video"`
	VideoPacketsByLayer     map[string]int64 `json:"video_packets_by_layer"`
	SpeakerEvents           int64            `json:"speaker_events"`
	Failures                int64            `json:"failures"`
	LastError               string           `json:"last_error,omitempty"`

	// With -record: the recordings the node ran and what their sinks
	// received in the window (packets, WebM-sized bytes, breaks in a
	// track's sequence numbers); the node's CPU over a window of the same
	// length before the recordings started; and what recording added per
	// consult, in percent of one core and in memory.
	Recordings                 int     `json:"recordings,omitempty"`
	RecordedTracks             int64   `json:"recorded_tracks,omitempty"`
	RecordedPackets            int64   `json:"recorded_packets,omitempty"`
	RecordedBytes              int64   `json:"recorded_webm_bytes,omitempty"`
	RecordedKbpsPerConsult     float64 `json:"recorded_kbit_per_second_per_consult,omitempty"`
	RecordedGaps               int64   `json:"recorded_sequence_gaps,omitempty"`
	RecordingsEnded            int64   `json:"recordings_ended,omitempty"`
	BaselineCPUSeconds         float64 `json:"baseline_cpu_seconds,omitempty"`
	RecordCPUPercentPerConsult float64 `json:"record_cpu_percent_of_a_core_per_consult,omitempty"`
	RecordKiBPerConsult        float64 `json:"record_memory_per_consult_kib,omitempty"`

	// With -turnd: turnd measured right after the node on a video-like
	// relay load, and the node's CPU per forwarded packet divided by
	// turnd's CPU per relayed packet.
	TurndPacketsPerSec float64 `json:"turnd_packets_per_second,omitempty"`
	TurndCPUPerMillion float64 `json:"turnd_cpu_seconds_per_million_packets,omitempty"`
	CPURatioVsTurnd    float64 `json:"cpu_per_packet_ratio_vs_turnd,omitempty"`
}

// repeated collects a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "-serve-node" {
		// The media node of -direct, started by the parent sfuload.
		if err := serveNode(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "sfuload -serve-node:", err)
			os.Exit(1)
		}
		return
	}
	o, jsonOut, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sfuload:", err)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var r Result
	if o.direct {
		r, err = runDirect(ctx, o)
	} else {
		r, err = runSignal(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sfuload:", err)
		os.Exit(1)
	}
	if o.turnd != "" {
		t, err := measureTurnd(ctx, o.turnd, r.PacketsPerSec, o.duration)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sfuload: -turnd:", err)
			os.Exit(1)
		}
		addTurnRef(&r, t)
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode([]Result{r})
	} else {
		printTable(os.Stdout, r, o)
	}
	// Figures of a run whose media did not all flow are printed, but the
	// run fails, so that a script or make target does not take it for a
	// measurement.
	if r.Failures > 0 || r.IncompleteSubscriptions > 0 || r.FirstFrameMissing > 0 {
		fmt.Fprintln(os.Stderr, "sfuload: not every subscription received media; see the figures above")
		os.Exit(3)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, bool, error) {
	var o options
	fs := flag.NewFlagSet("sfuload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "print JSON instead of a table")
	fs.StringVar(&o.signal, "signal", "./bin/signal", "path of the signal binary to start with -dev (its in-process SFU is measured)")
	var extra repeated
	fs.Var(&extra, "signal-arg", "one more argument for the signal command line; repeatable")
	fs.BoolVar(&o.direct, "direct", false, "join an in-process media node directly, without signaling, to measure the SFU core alone")
	fs.BoolVar(&o.ownTransport, "own-transport", false, "with -direct and -udp-listen, run the node's sessions on its own transport (ICE-lite, DTLS and SRTP on the shared port) instead of pion's peer connections")
	fs.StringVar(&o.udpListen, "udp-listen", "", "with -direct, the one UDP `address` every participant sends media to, as cmd/sfu runs (such as 127.0.0.1:0); empty for a port per participant")
	fs.BoolVar(&o.record, "record", false, "with -direct, record every consult through the node's recorder into a sink that assembles WebM-sized frames and discards them; measures the node before and after the recordings start")
	fs.StringVar(&o.nodeProfile, "node-profile", "", "with -direct, profile the node's process over the measured window: CPU into `prefix`.cpu, and the heap at the window's end into prefix.heap (go tool pprof)")
	fs.StringVar(&o.scenario, "scenario", "rooms", "rooms: N consults of 3 publishing members; grandrounds: 1 publisher to N receive-only subscribers")
	fs.IntVar(&o.rooms, "rooms", 5, "consults of three for -scenario rooms")
	fs.IntVar(&o.subscribers, "subscribers", 20, "subscribers for -scenario grandrounds")
	fs.IntVar(&o.videoKbps, "video-kbps", 600, "video bitrate of the full layer in kbit/s")
	fs.BoolVar(&o.simulcast, "simulcast", true, "send video as simulcast layers (-layers); false sends only the full layer")
	layers := fs.String("layers", "q=0.25,h=0.5,f=1", "simulcast layers as rid=fraction of -video-kbps, smallest first")
	view := fs.String("view", "640x360", "display size, in CSS pixels, each subscriber reports for each publisher's camera (the node picks the layer that fits); off sends none")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "measured time")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "time after every subscriber receives video and before measuring")
	fs.StringVar(&o.turnd, "turnd", "", "path of a turnd binary to measure with tools/turnload right after the node, for the node's CPU per forwarded packet divided by turnd's per relayed packet; empty for none")
	fs.DurationVar(&o.joinTimeout, "join-timeout", 30*time.Second, "longest wait for every subscriber's first frames before measuring anyway")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	o.signalArgs = extra
	var err error
	if o.layers, err = parseLayers(*layers, o.videoKbps); err != nil {
		return o, false, err
	}
	if *view != "off" {
		w, h, ok := strings.Cut(*view, "x")
		o.view[0], err = strconv.Atoi(w)
		if err == nil {
			o.view[1], err = strconv.Atoi(h)
		}
		if !ok || err != nil || o.view[0] <= 0 || o.view[1] <= 0 || o.view[0] > 8192 || o.view[1] > 8192 {
			return o, false, fmt.Errorf("-view %q: WIDTHxHEIGHT up to 8192x8192, or off", *view)
		}
	}
	switch {
	case o.scenario != "rooms" && o.scenario != "grandrounds":
		return o, false, fmt.Errorf("-scenario %q: rooms or grandrounds", o.scenario)
	case o.rooms < 1 || o.rooms > 500, o.subscribers < 1 || o.subscribers > 1000:
		return o, false, errors.New("1 <= -rooms <= 500, 1 <= -subscribers <= 1000")
	case o.videoKbps < 20 || o.videoKbps > 20000:
		return o, false, errors.New("20 <= -video-kbps <= 20000")
	case o.duration < time.Second || o.duration > 10*time.Minute || o.warmup < 0:
		return o, false, errors.New("1s <= -duration <= 10m, -warmup >= 0")
	case o.nodeProfile != "" && !o.direct:
		return o, false, errors.New("-node-profile needs -direct")
	case o.record && !o.direct:
		return o, false, errors.New("-record needs -direct: signal records only consults whose members consented")
	case o.ownTransport && (!o.direct || o.udpListen == ""):
		return o, false, errors.New("-own-transport needs -direct and -udp-listen: the node's own transport runs on one shared port")
	}
	return o, *jsonOut, nil
}

// parseLayers reads "q=0.25,h=0.5,f=1" into layers of kbps bitrate.
func parseLayers(s string, kbps int) ([]layer, error) {
	var out []layer
	for part := range strings.SplitSeq(s, ",") {
		rid, frac, ok := strings.Cut(strings.TrimSpace(part), "=")
		f, err := strconv.ParseFloat(frac, 64)
		if !ok || rid == "" || err != nil || f <= 0 || f > 1 {
			return nil, fmt.Errorf("-layers %q: want rid=fraction with 0 < fraction <= 1, such as q=0.25,h=0.5,f=1", s)
		}
		out = append(out, layer{rid: rid, kbps: max(1, int(f*float64(kbps)))})
	}
	return out, nil
}

func printTable(w io.Writer, r Result, o options) {
	video := fmt.Sprintf("video %d kbit/s", o.videoKbps)
	if o.simulcast {
		var rids []string
		for _, l := range o.layers {
			rids = append(rids, fmt.Sprintf("%s %d", l.rid, l.kbps))
		}
		video += " simulcast (" + strings.Join(rids, ", ") + ")"
	}
	fmt.Fprintf(w, "load: %s, %d rooms, %d publishers, %d subscribers, %d subscriptions; audio 50 packets/s; %s; %s measured after %s warm-up; mode %s\n\n",
		r.Scenario, r.Rooms, r.Publishers, r.Subscribers, r.Subscriptions, video, o.duration, o.warmup, r.Mode)
	fmt.Fprintf(w, "%12s %9s %8s %8s %8s %8s %8s %11s %9s %12s %12s %12s\n",
		"packets/s", "Mbit/s", "loss %", "p50 ms", "p95 ms", "p99 ms", "CPU s", "CPU s/Mpkt", "KiB/sub", "join p50 ms", "join p95 ms", "join max ms")
	fmt.Fprintf(w, "%12.0f %9.2f %8.3f %8.3f %8.3f %8.3f %8.2f %11.2f %9.0f %12.0f %12.0f %12.0f\n",
		r.PacketsPerSec, r.Mbps, r.LossPercent, r.P50ms, r.P95ms, r.P99ms, r.CPUSeconds, r.CPUPerMillion, r.KiBPerSubscriber, r.JoinP50ms, r.JoinP95ms, r.JoinMaxms)
	fmt.Fprintf(w, "\nCPU and memory are those of %s.\n", r.CPUProcess)
	fmt.Fprintf(w, "The machine's %d cores were %.0f %% busy; the load generator used %.2f CPU s, other processes %.2f CPU s.\n",
		runtime.NumCPU(), r.MachineBusyPercent, r.LoadCPUSeconds, r.OtherCPUSeconds)
	fmt.Fprintf(w, "Steady state: %.0f KiB", r.SteadyKiBPerParticipant)
	if r.GoroutinesPerParticipant > 0 {
		fmt.Fprintf(w, " and %.1f goroutines", r.GoroutinesPerParticipant)
	}
	fmt.Fprintf(w, " per participant (%d participants); %d layer switches, not counted as loss.\n", r.Participants, r.LayerSwitches)
	if r.HeldKiBPerSubscriber != 0 {
		fmt.Fprintf(w, "Held after a collection at the window's end: %.0f KiB per subscriber (heap %.0f, goroutine stacks %.0f); KiB/sub above is the resident size as sampled, the collector's headroom included.\n",
			r.HeldKiBPerSubscriber, r.HeapKiBPerSubscriber, r.StackKiBPerSubscriber)
	}
	if r.AllocsPerPacket > 0 {
		fmt.Fprintf(w, "The node's process made %.2f heap allocations per forwarded packet.\n", r.AllocsPerPacket)
	}
	if r.CPURatioVsTurnd > 0 {
		fmt.Fprintf(w, "Side by side: the node needs %.2f CPU s per million forwarded packets, turnd %.2f per million relayed (%.0f packets/s) in the same run: %.2f× turnd per packet.\n",
			r.CPUPerMillion, r.TurndCPUPerMillion, r.TurndPacketsPerSec, r.CPURatioVsTurnd)
	}
	if r.CPUPerMillion > 0 {
		// Per core-second depends on the machine; beside turnd's, it shows
		// how fast this machine is.
		fmt.Fprintf(w, "Per core-second: the node forwards %.0f packets", 1e6/r.CPUPerMillion)
		if r.TurndCPUPerMillion > 0 {
			fmt.Fprintf(w, ", turnd relays %.0f", 1e6/r.TurndCPUPerMillion)
		}
		fmt.Fprintln(w, ".")
	}
	if len(r.VideoPacketsByLayer) > 0 {
		var parts []string
		for _, l := range o.layers {
			if n, ok := r.VideoPacketsByLayer[l.rid]; ok {
				parts = append(parts, fmt.Sprintf("%s %d", l.rid, n))
			}
		}
		fmt.Fprintf(w, "Forwarded video packets by layer: %s.\n", strings.Join(parts, ", "))
	}
	if o.record {
		fmt.Fprintf(w, "Recording: %d consults, %d tracks; in the window %d packets, %.1f MB of WebM-sized frames (%.0f kbit/s per consult), %d sequence gaps.\n",
			r.Recordings, r.RecordedTracks, r.RecordedPackets, float64(r.RecordedBytes)/1e6, r.RecordedKbpsPerConsult, r.RecordedGaps)
		fmt.Fprintf(w, "Recording cost the node %.2f %% of a core and %.0f KiB per consult (CPU %.2f s without recordings, %.2f s with, over %s).\n",
			r.RecordCPUPercentPerConsult, r.RecordKiBPerConsult, r.BaselineCPUSeconds, r.CPUSeconds, o.duration)
	}
	if r.IncompleteSubscriptions > 0 {
		fmt.Fprintf(w, "%d subscriptions lacked audio or video during the measurement.\n", r.IncompleteSubscriptions)
	}
	if r.FirstFrameMissing > 0 {
		fmt.Fprintf(w, "%d subscribers never received a keyframe from every publisher.\n", r.FirstFrameMissing)
	}
	if r.Failures > 0 {
		fmt.Fprintf(w, "%d negotiation failures or sessions ended by the node; last: %s\n", r.Failures, r.LastError)
	}
}
