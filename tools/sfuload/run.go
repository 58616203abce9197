package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/procstat"
)

// member is one synthetic participant of a scenario.
type member struct {
	room    int
	name    string
	index   uint16 // run-wide, so a stamp names its publisher unambiguously
	publish bool
	// from are the publishers whose video this member waits for.
	from []uint16
	peer *peer
}

// plan lays out a scenario's rooms: consults of three members who all
// publish, or one room where a presenter publishes to receive-only
// subscribers (grand rounds).
func plan(o options) [][]*member {
	var rooms [][]*member
	var next uint16
	add := func(room int, name string, publish bool) *member {
		m := &member{room: room, name: name, index: next, publish: publish}
		next++
		return m
	}
	switch o.scenario {
	case "grandrounds":
		ms := []*member{add(0, "presenter", true)}
		for i := range o.subscribers {
			ms = append(ms, add(0, fmt.Sprintf("viewer%d", i+1), false))
		}
		rooms = append(rooms, ms)
	default:
		for r := range o.rooms {
			rooms = append(rooms, []*member{add(r, "clinician", true), add(r, "patient", true), add(r, "interpreter", true)})
		}
	}
	for _, ms := range rooms {
		for _, m := range ms {
			for _, other := range ms {
				if other != m && other.publish {
					m.from = append(m.from, other.index)
				}
			}
		}
	}
	return rooms
}

// counts returns how many members publish, how many receive, and how many
// (subscriber, publisher) pairs there are.
func counts(rooms [][]*member) (publishers, subscribers, subscriptions int) {
	for _, ms := range rooms {
		for _, m := range ms {
			if m.publish {
				publishers++
			}
			if len(m.from) > 0 {
				subscribers++
				subscriptions += len(m.from)
			}
		}
	}
	return
}

// joiner joins one member to its room on the node under test and starts
// its media; joinAt must be set when the member asks the node to join.
type joiner func(ctx context.Context, m *member) error

// usageFunc reads the CPU time and memory of the process the SFU runs in.
type usageFunc func() (procstat.Usage, error)

// measure joins every member, waits for media to flow, warms up, and
// measures over o.duration.
func measure(ctx context.Context, o options, env runEnv, rooms [][]*member, join joiner) (Result, error) {
	r := Result{Scenario: o.scenario, Rooms: len(rooms), VideoKbps: o.videoKbps, Simulcast: o.simulcast, CPUProcess: env.cpuProcess}
	r.Publishers, r.Subscribers, r.Subscriptions = counts(rooms)
	u0, err := env.usage()
	if err != nil {
		return r, err
	}
	g0, err := env.countGoroutines()
	if err != nil {
		return r, err
	}
	var h0 heldMemory
	if env.held != nil {
		if h0, err = env.held(); err != nil {
			return r, err
		}
	}
	var all []*member
	defer func() {
		var wg sync.WaitGroup
		for _, m := range all {
			wg.Go(m.peer.close)
		}
		wg.Wait()
	}()
	for _, ms := range rooms {
		for _, m := range ms {
			p, err := newPeer(ctx, peerConfig{index: m.index, publish: m.publish, layers: o.layers, simulcast: o.simulcast, base: env.base, win: env.win})
			if err != nil {
				return r, err
			}
			m.peer = p
			all = append(all, m)
		}
	}
	// Rooms join one after another, the members of a room together, as
	// when a consult moves to the node.
	for _, ms := range rooms {
		var wg sync.WaitGroup
		errs := make([]error, len(ms))
		for i, m := range ms {
			wg.Go(func() { errs[i] = join(ctx, m) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return r, fmt.Errorf("room %d, %s: %w", ms[i].room, ms[i].name, err)
			}
		}
	}
	waitFirstFrames(ctx, all, o.joinTimeout)
	var rb recBaseline
	if o.record {
		if rb, err = startRecordings(ctx, o, env, rooms); err != nil {
			return r, err
		}
	}
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(o.warmup):
	}

	from := time.Since(env.base)
	env.win.to.Store(int64(from + o.duration))
	env.win.from.Store(int64(from))
	u1, err := env.usage()
	if err != nil {
		return r, err
	}
	var rec1 recTotals
	if o.record {
		if rec1, err = env.recStats(); err != nil {
			return r, err
		}
	}
	g1, err := env.countGoroutines()
	if err != nil {
		return r, err
	}
	r.Participants = len(all)
	r.SteadyKiBPerParticipant = float64(u1.RSSBytes-u0.RSSBytes) / 1024 / float64(len(all))
	if env.goroutines != nil {
		r.GoroutinesPerParticipant = float64(g1-g0) / float64(len(all))
	}
	if o.nodeProfile != "" && env.profile != nil {
		if err := env.profile("profile-start", o.nodeProfile); err != nil {
			return r, err
		}
	}
	var m1 uint64
	if env.mallocs != nil {
		if m1, err = env.mallocs(); err != nil {
			return r, err
		}
	}
	self1, err := procstat.Read(os.Getpid())
	if err != nil {
		return r, err
	}
	busy1, total1, err := procstat.ReadMachineCPU()
	if err != nil {
		return r, err
	}
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(o.duration):
	}
	u2, err := env.usage()
	if err != nil {
		return r, err
	}
	var m2 uint64
	if env.mallocs != nil {
		if m2, err = env.mallocs(); err != nil {
			return r, err
		}
	}
	if env.held != nil {
		h2, err := env.held()
		if err != nil {
			return r, err
		}
		heldGrowth(&r, h0, h2)
	}
	if o.nodeProfile != "" && env.profile != nil {
		if err := env.profile("profile-stop", o.nodeProfile); err != nil {
			return r, err
		}
	}
	if o.record {
		rec2, err := env.recStats()
		if err != nil {
			return r, err
		}
		rb.result(&r, rec1, rec2, u1, u2, o.duration)
	}

	self2, err := procstat.Read(os.Getpid())
	if err != nil {
		return r, err
	}
	busy2, total2, err := procstat.ReadMachineCPU()
	if err != nil {
		return r, err
	}
	r.LoadCPUSeconds = self2.CPUSeconds - self1.CPUSeconds
	if total2 > total1 {
		r.MachineBusyPercent = 100 * (busy2 - busy1) / (total2 - total1)
	}
	r.OtherCPUSeconds = max(0, busy2-busy1-r.LoadCPUSeconds-(u2.CPUSeconds-u1.CPUSeconds))
	if o.inProcess {
		r.OtherCPUSeconds = max(0, busy2-busy1-r.LoadCPUSeconds)
	}
	time.Sleep(time.Second) // packets sent at the end of the window are in flight

	var t totals
	for _, m := range all {
		t.add(m.peer.stats)
		r.PacketsSent += m.peer.sent.Load()
		r.SpeakerEvents += m.peer.speakers.Load()
		r.Failures += m.peer.failures.Load()
		if err, ok := m.peer.lastErr.Load().(error); ok {
			r.LastError = err.Error()
		}
	}
	t.sortLatencies()
	r.Seconds = o.duration.Seconds()
	r.PacketsForwarded = t.packets
	r.PacketsPerSec = float64(t.packets) / r.Seconds
	r.Mbps = float64(t.bytes) * 8 / r.Seconds / 1e6
	r.LossPercent = t.lossPercent()
	r.LayerSwitches = t.switches
	r.P50ms, r.P95ms, r.P99ms = ms(percentile(t.latencies, 0.50)), ms(percentile(t.latencies, 0.95)), ms(percentile(t.latencies, 0.99))
	r.CPUSeconds = u2.CPUSeconds - u1.CPUSeconds
	if t.packets > 0 {
		r.CPUPerMillion = r.CPUSeconds / float64(t.packets) * 1e6
		if env.mallocs != nil {
			r.AllocsPerPacket = float64(m2-m1) / float64(t.packets)
		}
	}
	r.RSSBeforeMiB, r.RSSAfterMiB = float64(u0.RSSBytes)/(1<<20), float64(u2.RSSBytes)/(1<<20)
	r.RSSDeltaMiB = r.RSSAfterMiB - r.RSSBeforeMiB
	if r.Subscribers > 0 {
		r.KiBPerSubscriber = float64(u2.RSSBytes-u0.RSSBytes) / 1024 / float64(r.Subscribers)
	}
	r.IncompleteSubscriptions, r.VideoPacketsByLayer = coverage(all, o)
	joins, missing := joinTimes(all)
	r.FirstFrameMissing = missing
	r.JoinP50ms, r.JoinP95ms, r.JoinMaxms = ms(percentile(joins, 0.5)), ms(percentile(joins, 0.95)), ms(percentile(joins, 1))
	return r, nil
}

// runEnv is what a mode provides to measure.
type runEnv struct {
	base       time.Time
	win        *window
	usage      usageFunc
	cpuProcess string // what the CPU figure covers, for the output
	// goroutines counts the node's goroutines; nil where it cannot.
	goroutines func() (int, error)
	// record starts recording a room, and recStats sums up what the
	// recordings received; nil where the node cannot be asked (-record
	// needs -direct).
	record   func(ctx context.Context, room string) error
	recStats func() (recTotals, error)
	roomName func(room int) string
	// profile starts ("profile-start") or stops ("profile-stop") the
	// node's CPU and heap profiles; nil where the node cannot be asked.
	profile func(op, path string) error
	// mallocs counts the heap allocations of the node's process; nil
	// where the node shares its process with the participants.
	mallocs func() (uint64, error)
	// held reads the node's process's memory after a collection; nil
	// where the node cannot be asked.
	held func() (heldMemory, error)
}

func (e runEnv) countGoroutines() (int, error) {
	if e.goroutines == nil {
		return 0, nil
	}
	return e.goroutines()
}

// waitFirstFrames waits until every member has seen a keyframe from each
// publisher it expects, or the timeout passes; members still missing one
// are reported, not fatal.
func waitFirstFrames(ctx context.Context, all []*member, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, missing := joinTimes(all); missing == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinTimes returns, for each subscriber that saw every publisher it
// expects, the time from its join (or the publisher's, when that came
// later) to the first keyframe of the last publisher to show, sorted;
// and how many subscribers are still missing one.
func joinTimes(all []*member) ([]time.Duration, int) {
	joined := map[uint16]time.Duration{}
	for _, m := range all {
		joined[m.peer.cfg.index] = time.Duration(m.peer.joinAt.Load())
	}
	var out []time.Duration
	missing := 0
	for _, m := range all {
		if len(m.from) == 0 {
			continue
		}
		st := m.peer.stats
		st.mu.Lock()
		var worst time.Duration
		complete := true
		for _, pub := range m.from {
			first, ok := st.firstFrame[pub]
			if !ok {
				complete = false
				break
			}
			worst = max(worst, first-max(joined[m.peer.cfg.index], joined[pub]))
		}
		st.mu.Unlock()
		if complete {
			out = append(out, worst)
		} else {
			missing++
		}
	}
	slices.Sort(out)
	return out, missing
}

// coverage counts the subscriptions that lacked audio or video in the
// window (loss by sequence cannot see a stream that never came), and the
// forwarded video packets by simulcast layer, which shows the layers the
// node chose.
func coverage(all []*member, o options) (incomplete int, byLayer map[string]int64) {
	byLayer = map[string]int64{}
	for _, m := range all {
		st := m.peer.stats
		st.mu.Lock()
		for _, pub := range m.from {
			audio, video := false, false
			for k := range st.streams {
				if k.publisher != pub {
					continue
				}
				if k.stream == streamAudio {
					audio = true
				} else {
					video = true
				}
			}
			if !audio || !video {
				incomplete++
			}
		}
		for k, l := range st.streams {
			if k.stream == streamAudio {
				continue
			}
			name := fmt.Sprint(k.stream)
			if !o.simulcast {
				name = o.layers[len(o.layers)-1].rid
			} else if int(k.stream) < len(o.layers) {
				name = o.layers[k.stream].rid
			}
			byLayer[name] += l.received
		}
		st.mu.Unlock()
	}
	return incomplete, byLayer
}
