package main

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestVP8PayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		s         stamp
		size      int
		pictureID uint16
	}{
		{"keyframe start", stamp{Publisher: 7, Stream: 2, Keyframe: true, Start: true, Seq: 1, SentNanos: 123456789}, minVP8Payload, 5},
		{"interframe start", stamp{Publisher: 65535, Stream: 0, Start: true, Seq: 1 << 31, SentNanos: 1}, 1100, 0x7fff},
		{"continuation", stamp{Publisher: 1, Stream: 1, Seq: 99, SentNanos: 1 << 60}, 600, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeVP8(make([]byte, tt.size), tt.pictureID, tt.s)
			if start := b[0]&0x10 != 0; start != tt.s.Start {
				t.Fatalf("S bit = %v, want %v", start, tt.s.Start)
			}
			got, key, err := decodeVP8(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.s || key != tt.s.Keyframe {
				t.Fatalf("decoded %+v key %v, want %+v key %v", got, key, tt.s, tt.s.Keyframe)
			}
			if tt.s.Keyframe && (b[4]&0x01 != 0 || b[7] != 0x9d || b[8] != 0x01 || b[9] != 0x2a) {
				t.Fatalf("keyframe header % x lacks P=0 and the start code", b[4:10])
			}
		})
	}
}

// An SFU may rewrite the descriptor, for instance with a 7-bit picture id
// or TL0PICIDX and TID bytes; the stamp must still be found.
func TestVP8DecodeRewrittenDescriptor(t *testing.T) {
	s := stamp{Publisher: 3, Stream: 1, Keyframe: true, Start: true, Seq: 42, SentNanos: 777}
	orig := encodeVP8(make([]byte, minVP8Payload), 9, s)
	tests := []struct {
		name string
		desc []byte
	}{
		{"no extension", []byte{0x10}},
		{"7-bit picture id", []byte{0x90, 0x80, 0x09}},
		{"picture id, TL0PICIDX, TID", []byte{0x90, 0xe0, 0x80, 0x09, 0x01, 0x20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append(append([]byte{}, tt.desc...), orig[vp8DescLen:]...)
			got, key, err := decodeVP8(b)
			if err != nil || got != s || !key {
				t.Fatalf("decoded %+v key %v err %v, want %+v", got, key, err, s)
			}
		})
	}
}

func TestDecodeRefusesForeignPayloads(t *testing.T) {
	tests := []struct {
		name  string
		b     []byte
		audio bool
	}{
		{"empty video", nil, false},
		{"padding probe", []byte{0x00, 0x02}, false},
		{"truncated descriptor", []byte{0x90}, false},
		{"video without stamp", make([]byte, 64), false},
		{"short audio", []byte{opusTOC, 1, 2}, true},
		{"audio without stamp", make([]byte, 100), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.audio {
				_, err = decodeAudio(tt.b)
			} else {
				_, _, err = decodeVP8(tt.b)
			}
			if err == nil {
				t.Fatal("decoded a payload without a stamp")
			}
		})
	}
}

func TestAudioPayloadRoundTrip(t *testing.T) {
	s := stamp{Publisher: 12, Stream: streamAudio, Seq: 5000, SentNanos: 42}
	b := encodeAudio(make([]byte, audioPayloadSize), s)
	got, err := decodeAudio(b)
	if err != nil || got != s || b[0] != opusTOC {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, s)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	ten := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no samples", nil, 0.5, 0},
		{"one sample", []time.Duration{7}, 0.99, 7},
		{"median of ten", ten, 0.5, 5},
		{"p95 of ten", ten, 0.95, 10},
		{"p90 of ten", ten, 0.9, 9},
		{"minimum", ten, 0, 1},
		{"maximum", ten, 1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestLossCounting(t *testing.T) {
	tests := []struct {
		name           string
		seqs           []uint32
		expected, lost int64
	}{
		{"nothing", nil, 0, 0},
		{"in order", []uint32{10, 11, 12, 13}, 4, 0},
		{"one gap", []uint32{10, 11, 13, 14}, 5, 1},
		{"reordered", []uint32{10, 12, 11, 13}, 4, 0},
		{"starts late", []uint32{100, 102}, 3, 1},
		{"duplicates are no negative loss", []uint32{1, 1, 2}, 2, 0},
		{"the pause between two runs is no loss", []uint32{10, 11, 12, endRun, 40, 41}, 5, 0},
		{"a gap within a run is", []uint32{10, 11, 12, endRun, 40, 42}, 6, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l lossCounter
			for _, s := range tt.seqs {
				if s == endRun {
					l.endRun()
					continue
				}
				l.add(s)
			}
			if l.expected() != tt.expected || l.lost() != tt.lost {
				t.Fatalf("expected %d lost %d, want %d and %d", l.expected(), l.lost(), tt.expected, tt.lost)
			}
		})
	}
}

// endRun in a test's sequence stands for the end of a run.
const endRun = ^uint32(0)

// TestLayerSwitchIsNotLoss: a subscriber on layer 1 switched to layer 0
// and back sees a pause in layer 1's sequence, which is not loss; a
// packet missing inside a run is.
func TestLayerSwitchIsNotLoss(t *testing.T) {
	var w window
	w.from.Store(1)
	w.to.Store(1 << 40)
	r := newRecvStats()
	add := func(layer uint8, seqs ...uint32) {
		for _, s := range seqs {
			r.record(&w, stamp{Publisher: 4, Stream: layer, Seq: s, SentNanos: 10}, false, 100, 20)
		}
	}
	add(1, 100, 101, 102)
	add(0, 300, 301, 302, 303)
	add(1, 110, 111, 113) // 112 lost
	r.record(&w, stamp{Publisher: 4, Stream: streamAudio, Seq: 7, SentNanos: 10}, false, 100, 20)
	var tot totals
	tot.add(r)
	if tot.switches != 2 || tot.expected != 12 || tot.lost != 1 {
		t.Fatalf("switches %d, expected %d, lost %d; want 2 switches and 1 of 12 lost", tot.switches, tot.expected, tot.lost)
	}
}

func TestRecordCountsOnlyTheWindow(t *testing.T) {
	var w window
	r := newRecvStats()
	r.record(&w, stamp{Publisher: 1, Stream: 0, Keyframe: true, Seq: 1, SentNanos: 5}, true, 100, 10)
	w.from.Store(100)
	w.to.Store(200)
	r.record(&w, stamp{Publisher: 1, Stream: 0, Seq: 2, SentNanos: 150}, false, 100, 160)
	r.record(&w, stamp{Publisher: 1, Stream: 0, Seq: 4, SentNanos: 170}, false, 100, 175)
	r.record(&w, stamp{Publisher: 1, Stream: 0, Seq: 5, SentNanos: 250}, false, 100, 260)
	var tot totals
	tot.add(r)
	if tot.packets != 2 || tot.bytes != 200 || tot.lost != 1 || tot.expected != 3 {
		t.Fatalf("totals %+v, want 2 packets, 200 bytes, 1 of 3 lost", tot)
	}
	if r.firstFrame[1] != 10 {
		t.Fatalf("first frame at %v, want 10ns (before the window)", r.firstFrame[1])
	}
	if tot.lossPercent() < 33 || tot.lossPercent() > 34 {
		t.Fatalf("loss %.2f%%", tot.lossPercent())
	}
}

func TestPlanLayerFitsPackets(t *testing.T) {
	tests := []struct {
		kbps int
		want layerPlan
	}{
		{150, layerPlan{packets: 1, size: 625}},
		{600, layerPlan{packets: 3, size: 833}},
		{1, layerPlan{packets: 1, size: minVP8Payload}},
	}
	for _, tt := range tests {
		if got := planLayer(tt.kbps); got != tt.want {
			t.Errorf("planLayer(%d) = %+v, want %+v", tt.kbps, got, tt.want)
		}
	}
}

func TestParseLayers(t *testing.T) {
	got, err := parseLayers("q=0.25,h=0.5,f=1", 800)
	if err != nil || len(got) != 3 || got[0] != (layer{"q", 200}) || got[2] != (layer{"f", 800}) {
		t.Fatalf("parseLayers = %v, %v", got, err)
	}
	for _, bad := range []string{"", "q", "q=0", "q=2", "=0.5", "q=x"} {
		if _, err := parseLayers(bad, 800); err == nil {
			t.Errorf("parseLayers(%q) accepted", bad)
		}
	}
}

// A participant that never joined (its room failed first) must close
// without touching streams that were never negotiated.
func TestPeerClosesBeforeNegotiation(t *testing.T) {
	for _, simulcast := range []bool{true, false} {
		p, err := newPeer(context.Background(), peerConfig{index: 1, publish: true, layers: []layer{{"q", 100}, {"f", 400}}, simulcast: simulcast, base: time.Now(), win: &window{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.pc.CreateOffer(nil); err != nil {
			t.Fatal(err)
		}
		p.close()
	}
}

// TestDirectRoomForwardsAndMeasures runs one consult of three against an
// in-process node for two seconds: every member must receive from both
// others, and the figures must come out of what was received; once with
// a port per participant, once with one UDP port for all, and once on
// the node's own transport.
func TestDirectRoomForwardsAndMeasures(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"port per participant", nil},
		{"one port", []string{"-udp-listen", "127.0.0.1:0"}},
		{"own transport", []string{"-udp-listen", "127.0.0.1:0", "-own-transport"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { directRoom(t, tt.args) })
	}
}

// TestDirectRoomRecorded runs one consult of three against an in-process
// node that records it: the recording takes each member's audio and
// video, and its figures come out of what the sink received.
func TestDirectRoomRecorded(t *testing.T) {
	r := directRoom(t, []string{"-record"})
	if r.Recordings != 1 || r.RecordedTracks != 6 || r.RecordingsEnded != 0 {
		t.Fatalf("%d recordings of %d tracks, %d ended; want 1 of 6 (three members' audio and video), running", r.Recordings, r.RecordedTracks, r.RecordingsEnded)
	}
	// Two seconds of three members' audio alone are 300 packets.
	if r.RecordedPackets < 300 || r.RecordedBytes <= r.RecordedPackets || r.RecordedKbpsPerConsult <= 0 {
		t.Fatalf("recorded %d packets, %d bytes, %.0f kbit/s", r.RecordedPackets, r.RecordedBytes, r.RecordedKbpsPerConsult)
	}
	if r.BaselineCPUSeconds <= 0 {
		t.Fatalf("no CPU measured before the recordings: %v", r.BaselineCPUSeconds)
	}
}

func directRoom(t *testing.T, extra []string) Result {
	o, _, err := parseFlags(append([]string{"-direct", "-rooms", "1", "-duration", "2s", "-warmup", "500ms", "-join-timeout", "20s"}, extra...), t.Output())
	if err != nil {
		t.Fatal(err)
	}
	o.inProcess = true // the test binary cannot serve as the node's process
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := runDirect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Publishers != 3 || r.Subscribers != 3 || r.Subscriptions != 6 {
		t.Fatalf("counts %d/%d/%d, want 3 publishers, 3 subscribers, 6 subscriptions", r.Publishers, r.Subscribers, r.Subscriptions)
	}
	if r.FirstFrameMissing != 0 {
		t.Fatalf("%d subscribers never saw every publisher's video", r.FirstFrameMissing)
	}
	// Two seconds of audio alone from two publishers to each of three
	// subscribers is 600 packets; anything near zero means no forwarding.
	if r.PacketsForwarded < 300 || r.PacketsPerSec <= 0 || r.Mbps <= 0 {
		t.Fatalf("forwarded %d packets (%.0f/s, %.2f Mbit/s)", r.PacketsForwarded, r.PacketsPerSec, r.Mbps)
	}
	if r.P50ms <= 0 || r.P50ms > r.P95ms || r.P95ms > r.P99ms {
		t.Fatalf("latencies p50 %v p95 %v p99 %v not computed", r.P50ms, r.P95ms, r.P99ms)
	}
	if r.JoinP50ms <= 0 || r.JoinP95ms < r.JoinP50ms || r.JoinMaxms < r.JoinP95ms {
		t.Fatalf("join to first frame p50 %v p95 %v max %v", r.JoinP50ms, r.JoinP95ms, r.JoinMaxms)
	}
	if r.Failures != 0 {
		t.Fatalf("%d failures, last %s", r.Failures, r.LastError)
	}
	// Each participant adds at least its peer connection's goroutines.
	if r.Participants != 3 || r.GoroutinesPerParticipant < 1 {
		t.Fatalf("%d participants, %.1f goroutines each", r.Participants, r.GoroutinesPerParticipant)
	}
	return r
}

// TestSignalPathConsult runs one consult of three through a real signal
// -dev for two seconds: accounts, link, lobby, admission, the move to the
// node. It needs a signal binary built from the same tree, named by
// SFULOAD_SIGNAL (make build, then SFULOAD_SIGNAL=$PWD/bin/signal), so
// that it never measures a stale one; without it the test is skipped.
func TestSignalPathConsult(t *testing.T) {
	bin := os.Getenv("SFULOAD_SIGNAL")
	if bin == "" {
		t.Skip("SFULOAD_SIGNAL names no signal binary")
	}
	o, _, err := parseFlags([]string{"-signal", bin, "-rooms", "1", "-duration", "2s", "-warmup", "500ms", "-join-timeout", "20s"}, t.Output())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := runSignal(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.Mode != "signal" || r.FirstFrameMissing != 0 || r.IncompleteSubscriptions != 0 {
		t.Fatalf("mode %s, %d subscribers without first frames, %d incomplete subscriptions", r.Mode, r.FirstFrameMissing, r.IncompleteSubscriptions)
	}
	if r.PacketsForwarded < 300 || r.P50ms <= 0 || r.CPUSeconds <= 0 {
		t.Fatalf("forwarded %d packets, p50 %v ms, signal CPU %v s", r.PacketsForwarded, r.P50ms, r.CPUSeconds)
	}
	if r.Failures != 0 {
		t.Fatalf("%d failures, last %s", r.Failures, r.LastError)
	}
}
