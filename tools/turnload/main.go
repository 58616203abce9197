// Command turnload measures a TURN relay under load: it opens N allocations
// on loopback, relays UDP packets of a set size at a set rate from each
// allocation to a peer, and prints relayed packets/s, Mbit/s, loss,
// added latency percentiles and the relay's CPU seconds per million
// packets. Given -turnd it runs turnd; given -coturn (when installed) it
// runs coturn's turnserver with the same load, and prints the ratios.
// With -echo the peer returns every packet through the relay, so the relay
// carries both directions of a call, and the clients measure round trips.
// With -runs N every relay is measured N times, in alternating order, and
// the spread of the ratios is printed; a run in which fewer packets arrived
// than 95 % of the offered rate (the load generator, on the same machine,
// fell behind) is marked and left out of the spread.
//
//	go run ./tools/turnload -turnd ./bin/turnd -coturn turnserver -allocations 200 -rate 50 -size 200 -duration 20s
//	go run ./tools/turnload -turnd ./bin/turnd -coturn turnserver -allocations 200 -rate 100 -size 600 -duration 15s -echo
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/internal/syncbuf"
	"github.com/openconsult/openconsult/relay"
)

type options struct {
	allocations int
	rate        int // packets per second per allocation
	size        int
	duration    time.Duration
	secret      string
	echo        bool
}

// magic marks measured packets ("turnload" at bytes 8..16, after the send
// timestamp), so priming packets are neither counted nor echoed.
const magic = 0x7475726e6c6f6164

// sentAt returns the send timestamp of a measured packet.
func sentAt(p []byte) (time.Time, bool) {
	if len(p) < 16 || binary.BigEndian.Uint64(p[8:16]) != magic {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p[:8]))), true
}

// Result is one run's figures. With Echo, the packet counts and the rates
// cover both directions (sent: by the clients plus echoed by the peer;
// received: at the peer plus back at the clients), so the per-packet CPU
// figure stays comparable with a one-way run; P50ms and P99ms stay one way
// (client to peer) and the round trip is measured at the clients.
type Result struct {
	Server          string  `json:"server"`
	Run             int     `json:"run"`
	Allocations     int     `json:"allocations"`
	Echo            bool    `json:"echo"`
	PacketsSent     int64   `json:"packets_sent"`
	PacketsReceived int64   `json:"packets_received"`
	LossPercent     float64 `json:"loss_percent"`
	PacketsPerSec   float64 `json:"packets_per_second"`
	Mbps            float64 `json:"mbit_per_second"`
	P50ms           float64 `json:"latency_p50_ms"`
	P99ms           float64 `json:"latency_p99_ms"`
	RoundTripP50ms  float64 `json:"round_trip_p50_ms"`
	RoundTripP99ms  float64 `json:"round_trip_p99_ms"`
	CPUSeconds      float64 `json:"relay_cpu_seconds"`
	CPUPerMillion   float64 `json:"relay_cpu_seconds_per_million_packets"`
	// Starved is set when fewer packets reached their destination than 95 %
	// of the offered rate: the load generator, on the same machine, did
	// not keep up (or the relay lost them), and the run's figures are not
	// comparable with a run at the offered rate.
	Starved bool `json:"starved"`
}

func main() {
	var o options
	turnd := flag.String("turnd", "", "path of a turnd binary to start and measure")
	before := flag.String("turnd-before", "", "path of an earlier turnd build to measure first with the same load, for a before/after comparison in one run")
	coturn := flag.String("coturn", "", "path of coturn's turnserver to start and measure with the same load (skipped when absent)")
	jsonOut := flag.Bool("json", false, "print JSON instead of a table")
	repeat := flag.Int("runs", 1, "measure every relay this many times, alternating their order, and print each run and the spread")
	flag.IntVar(&o.allocations, "allocations", 100, "concurrent allocations")
	flag.IntVar(&o.rate, "rate", 50, "packets per second per allocation (audio is 50)")
	flag.IntVar(&o.size, "size", 200, "payload bytes per packet")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	flag.StringVar(&o.secret, "secret", "turnload-shared-secret-0123456789", "shared REST secret given to the servers")
	flag.BoolVar(&o.echo, "echo", false, "the peer sends every packet back through the relay (both directions of a call); adds round-trip percentiles")
	flag.Parse()
	if *turnd == "" {
		fmt.Fprintln(os.Stderr, "turnload: -turnd is required")
		os.Exit(2)
	}
	if o.size < 16 || o.allocations < 1 || o.rate < 1 || o.duration < time.Second || o.duration > 10*time.Minute || *repeat < 1 || *repeat > 20 {
		fmt.Fprintln(os.Stderr, "turnload: -size >= 16, -allocations >= 1, -rate >= 1, 1s <= -duration <= 10m, 1 <= -runs <= 20")
		os.Exit(2)
	}
	// Each relay listens on a port picked free when it starts, so that
	// runs beside other relays on the same machine do not collide.
	turndArgs := func(path string) func(addr string) []string {
		return func(addr string) []string {
			return []string{path, "-listen", addr, "-tls-listen", "off", "-metrics", "off",
				"-relay-ports", "40000-49999", "-allow-peer", "127.0.0.1", "-user-quota", "100000", "-total-quota", "100000", "-allocation-rate", "0", "-connections-per-address", "0", "-log-level", "error"}
		}
	}
	turndEnv := []string{"TURND_AUTH_SECRET=" + o.secret}
	var servers []server
	if *before != "" {
		servers = append(servers, server{name: "before", argv: turndArgs(*before), env: turndEnv, required: true})
	}
	servers = append(servers, server{name: "turnd", argv: turndArgs(*turnd), env: turndEnv, required: true})
	if path, err := exec.LookPath(*coturn); *coturn != "" && err == nil {
		servers = append(servers, server{name: "coturn", argv: func(addr string) []string {
			_, port, _ := net.SplitHostPort(addr)
			return []string{path, "-n", "-L", "127.0.0.1", "-E", "127.0.0.1", "-p", port, "--min-port", "50000", "--max-port", "59999",
				"--use-auth-secret", "--static-auth-secret", o.secret, "--realm", "turnload", "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
				"--log-file", "stdout", "--simple-log", "--no-stun-backward-compatibility"}
		}})
	}
	var runs [][]Result
	for run := 1; run <= *repeat; run++ {
		rs, err := measureAll(servers, run, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "turnload:", err)
			os.Exit(1)
		}
		runs = append(runs, rs)
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(slices.Concat(runs...))
		return
	}
	for i, rs := range runs {
		if len(runs) > 1 {
			fmt.Printf("run %d of %d\n", i+1, len(runs))
		}
		printTable(os.Stdout, rs, o)
		fmt.Println()
	}
	if len(runs) > 1 {
		printSummary(os.Stdout, runs)
	}
}

// server is a relay to start and measure; argv gives its command line
// for a listen address.
type server struct {
	name     string
	argv     func(addr string) []string
	env      []string
	required bool // its failure ends the command; coturn's is reported and skipped
}

// measureAll measures every server once, in the given order on odd runs
// and in reverse on even ones, so that a machine growing busier or
// quieter during a series does not always favour the same server. It
// returns the results in the given order.
func measureAll(servers []server, run int, o options) ([]Result, error) {
	order := slices.Clone(servers)
	if run%2 == 0 {
		slices.Reverse(order)
	}
	byName := map[string]Result{}
	for _, sv := range order {
		addr := freeAddr()
		r, err := measure(sv.name, sv.argv(addr), sv.env, addr, o)
		if err != nil {
			if sv.required {
				return nil, fmt.Errorf("%s: %w", sv.name, err)
			}
			fmt.Fprintf(os.Stderr, "turnload: %s: %v\n", sv.name, err)
			continue
		}
		r.Run = run
		byName[sv.name] = r
	}
	var rs []Result
	for _, sv := range servers {
		if r, ok := byName[sv.name]; ok {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// measure starts a relay process, loads it and reads its CPU time.
func measure(name string, argv, env []string, addr string, o options) (Result, error) {
	// A relay left over from an aborted run would answer in place of the
	// one started here, and the figures would be of the wrong process.
	if err := portFree(addr); err != nil {
		return Result{}, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitListening(addr, exited); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w (%v); its output: %q", err, waitErr, lastBytes(stderr.String(), 500))
		}
		return Result{}, err
	}
	r, err := load(addr, o, func() (float64, error) { return cpuSeconds(cmd.Process.Pid) })
	r.Server = name
	return r, err
}

// freeAddr returns a loopback address whose port is free over UDP and TCP
// now (the relay started next takes both), or the address the relays
// used before, which portFree then reports if it is taken.
func freeAddr() string {
	for range 20 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			break
		}
		addr := u.LocalAddr().String()
		t, err := net.Listen("tcp4", addr)
		u.Close()
		if err == nil {
			t.Close()
			return addr
		}
	}
	return "127.0.0.1:34781"
}

// portFree reports an error when something listens on addr already, over
// UDP or TCP.
func portFree(addr string) error {
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use over UDP (a relay left from an earlier run?): %w", addr, err)
	}
	u.Close()
	t, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use over TCP (a relay left from an earlier run?): %w", addr, err)
	}
	return t.Close()
}

var errExited = errors.New("the relay exited before it listened")

// waitListening waits until the relay accepts TCP on addr, or reports that
// it exited first.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errExited
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening", addr)
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cpuSeconds reads user+system time of a process from /proc.
func cpuSeconds(pid int) (float64, error) {
	u, err := procstat.Read(pid)
	return u.CPUSeconds, err
}

type allocation struct {
	client *turn.Client
	relay  net.PacketConn
	conn   net.PacketConn
}

// load runs the traffic and computes the figures.
func load(addr string, o options, cpu func() (float64, error)) (Result, error) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return Result{}, err
	}
	defer peer.Close()
	// The peer takes the traffic of every allocation on one socket; a
	// larger buffer rides out a scheduling delay of this process, so that
	// loss is the relay's and not the peer's (capped by net.core.rmem_max).
	_ = peer.SetReadBuffer(4 << 20)
	allocs := make([]allocation, 0, o.allocations)
	defer func() {
		for _, a := range allocs {
			a.relay.Close()
			a.client.Close()
			a.conn.Close()
		}
	}()
	for i := range o.allocations {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return Result{}, err
		}
		user, pass := relay.MintCredential([]byte(o.secret), fmt.Sprintf("load%d", i), time.Hour, time.Now())
		cl, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr, Conn: conn, Username: user, Password: pass})
		if err == nil {
			err = cl.Listen()
		}
		var rc net.PacketConn
		if err == nil {
			rc, err = cl.Allocate()
		}
		if err != nil {
			conn.Close()
			return Result{}, fmt.Errorf("allocation %d: %w", i, err)
		}
		allocs = append(allocs, allocation{client: cl, relay: rc, conn: conn})
		// Prime the permission and channel before measuring; the channel
		// binding also makes the relay return echoes as ChannelData.
		if _, err := rc.WriteTo(make([]byte, o.size), peer.LocalAddr()); err != nil {
			return Result{}, fmt.Errorf("allocation %d: %w", i, err)
		}
	}
	var received, echoed atomic.Int64
	var mu sync.Mutex
	seconds := int(o.duration / time.Second)
	latencies := make([]time.Duration, 0, o.allocations*o.rate*seconds)
	// One slice per allocation, written only by its reader, so the client
	// side needs no lock; merged once the readers have stopped.
	var roundTrips [][]time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers sync.WaitGroup
	// Readers block in ReadFrom; a read deadline in the past wakes them
	// once ctx is done, without a per-packet deadline in the loops.
	stop := sync.OnceFunc(func() {
		cancel()
		now := time.Now()
		_ = peer.SetReadDeadline(now)
		for _, a := range allocs {
			_ = a.relay.SetReadDeadline(now)
		}
		readers.Wait()
	})
	defer stop()
	if o.echo {
		roundTrips = make([][]time.Duration, len(allocs))
		for i, a := range allocs {
			roundTrips[i] = make([]time.Duration, 0, o.rate*(seconds+1))
			readers.Go(func() { readEchoes(ctx, a.relay, o.size, &roundTrips[i]) })
		}
	}
	readers.Go(func() {
		buf := make([]byte, max(2048, o.size))
		for {
			// ReadFromUDPAddrPort and WriteToUDPAddrPort allocate no
			// address per packet, which keeps the peer ahead of the relay.
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				if stopped(ctx, err) {
					return
				}
				continue
			}
			sent, ok := sentAt(buf[:n])
			if !ok {
				continue
			}
			d := time.Since(sent)
			if o.echo {
				if _, err := peer.WriteToUDPAddrPort(buf[:n], from); err == nil {
					echoed.Add(1)
				}
			}
			received.Add(1)
			mu.Lock()
			latencies = append(latencies, d)
			mu.Unlock()
		}
	})
	time.Sleep(500 * time.Millisecond) // let priming packets drain
	received.Store(0)
	echoed.Store(0)
	mu.Lock()
	latencies = latencies[:0]
	mu.Unlock()

	cpu0, err := cpu()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	var sent atomic.Int64
	var senders sync.WaitGroup
	interval := time.Second / time.Duration(o.rate)
	for i, a := range allocs {
		senders.Go(func() {
			payload := make([]byte, o.size)
			binary.BigEndian.PutUint64(payload[8:16], magic)
			// Spread the allocations over the interval, like real streams.
			time.Sleep(interval * time.Duration(i) / time.Duration(len(allocs)))
			t := time.NewTicker(interval)
			defer t.Stop()
			for time.Since(start) < o.duration {
				binary.BigEndian.PutUint64(payload[:8], uint64(time.Now().UnixNano()))
				if _, err := a.relay.WriteTo(payload, peer.LocalAddr()); err == nil {
					sent.Add(1)
				}
				<-t.C
			}
		})
	}
	senders.Wait()
	elapsed := time.Since(start)
	time.Sleep(time.Second) // packets in flight
	cpu1, err := cpu()
	if err != nil {
		return Result{}, err
	}
	stop()

	// The readers have stopped: nothing below needs the lock.
	var rtts []time.Duration
	for _, rt := range roundTrips {
		rtts = append(rtts, rt...)
	}
	r := Result{Allocations: o.allocations, Echo: o.echo,
		PacketsSent:     sent.Load() + echoed.Load(),
		PacketsReceived: received.Load() + int64(len(rtts)),
		CPUSeconds:      cpu1 - cpu0}
	r.P50ms, r.P99ms = percentiles(latencies)
	if o.echo {
		r.RoundTripP50ms, r.RoundTripP99ms = percentiles(rtts)
	}
	r.PacketsPerSec = float64(r.PacketsReceived) / elapsed.Seconds()
	offered := float64(o.allocations * o.rate)
	if o.echo {
		offered *= 2
	}
	r.Starved = r.PacketsPerSec < 0.95*offered
	r.Mbps = r.PacketsPerSec * float64(o.size) * 8 / 1e6
	if r.PacketsSent > 0 {
		r.LossPercent = 100 * float64(r.PacketsSent-r.PacketsReceived) / float64(r.PacketsSent)
	}
	if r.PacketsReceived > 0 {
		r.CPUPerMillion = r.CPUSeconds / float64(r.PacketsReceived) * 1e6
	}
	return r, nil
}

// readEchoes reads the peer's echoes arriving through the relay (as
// ChannelData, unwrapped by pion) and records their round trips until ctx
// is done.
func readEchoes(ctx context.Context, rc net.PacketConn, size int, rtts *[]time.Duration) {
	buf := make([]byte, max(2048, size))
	for {
		n, _, err := rc.ReadFrom(buf)
		if err != nil {
			if stopped(ctx, err) {
				return
			}
			continue
		}
		if sent, ok := sentAt(buf[:n]); ok {
			*rtts = append(*rtts, time.Since(sent))
		}
	}
}

// stopped tells a reader whether to end: on the deadline set once ctx is
// done, and on errors other than a timeout (a closed conn), which would
// repeat at once; only a stray timeout before that is read past.
func stopped(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout()
}
