package media_test

import (
	"errors"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// onLayer reports whether the last 30 packets p received on stream came
// from layer.
func onLayer(p *nodetest.Participant, stream string, layer byte) func() bool {
	return func() bool {
		log := p.Log(stream)
		if len(log) < 30 {
			return false
		}
		for _, e := range log[len(log)-30:] {
			if e.Layer != layer {
				return false
			}
		}
		return true
	}
}

// TestBandwidthDropLowersLayer: when a subscriber's bandwidth estimate
// falls below what it is sent, it steps down to the low layer, one layer
// at a time and at keyframes; when the estimate recovers it climbs back.
func TestBandwidthDropLowersLayer(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings()})
	r := nodetest.NewRoom(t)
	r.Join(sfu, "pub", nodetest.Publish{Simulcast: true})
	sub := r.Join(sfu, "sub", nodetest.Publish{})
	const stream = "pub/pub"
	eventually.True(t, 20*time.Second, "the full layer", onLayer(sub, stream, 'f'))
	media.SetEstimate(sub.Session, func() int { return 100_000 }) // 100 kbit/s
	eventually.True(t, 10*time.Second, "the low layer after the estimate fell", onLayer(sub, stream, 'q'))
	media.SetEstimate(sub.Session, func() int { return 20_000_000 })
	eventually.True(t, 15*time.Second, "a higher layer after the estimate recovered", onLayer(sub, stream, 'h'))
	if n := nodetest.CheckContinuous(t, sub.Log(stream)); n < 2 {
		t.Errorf("%d layer switches, want 2", n)
	}
}

// TestMaxTracksRefusesOffer: an offer that would publish more tracks than
// the node allows is refused with ErrFull, and the room frees up when a
// publisher leaves.
func TestMaxTracksRefusesOffer(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), MaxTracks: 2})
	r := nodetest.NewRoom(t)
	a := r.Join(sfu, "a", nodetest.Publish{Video: true, Audio: true})
	if l := sfu.Load(); l.Tracks != 2 || l.MaxTracks != 2 {
		t.Fatalf("Load = %+v, want 2 of 2 tracks", l)
	}
	_, err := nodetest.JoinWith(t, sfu, "c_1", "b", r.Quiet(), nodetest.Publish{Video: true}, nodetest.LoopbackSettings())
	if !errors.Is(err, media.ErrFull) {
		t.Fatalf("publishing a third track: %v, want ErrFull", err)
	}
	// A member who only watches still gets in.
	w := r.Join(sfu, "watcher", nodetest.Publish{})
	eventually.True(t, 20*time.Second, "media at the watcher", func() bool { return w.From("a/a") > 10 })
	a.Session.Close()
	eventually.True(t, 5*time.Second, "the tracks released", func() bool { return sfu.Load().Tracks == 0 })
	r.Join(sfu, "c", nodetest.Publish{Video: true})
	if l := sfu.Load(); l.Tracks != 1 {
		t.Fatalf("Load = %+v, want 1 track", l)
	}
}

var ownFrame = regexp.MustCompile(`openconsult/openconsult/media\.`)

// TestNoGoroutineLeft: every goroutine the SFU starts ends by Close, and
// the process returns to the goroutines it had before.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("room", func(t *testing.T) {
		sfu, err := media.New(media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings(), UDPListen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		r := nodetest.NewRoom(t)
		ps := []*nodetest.Participant{
			r.Join(sfu, "a", nodetest.Publish{Simulcast: true, Audio: true}),
			r.Join(sfu, "b", nodetest.Publish{Video: true, Audio: true}),
			r.Join(sfu, "c", nodetest.Publish{Video: true}),
		}
		nodetest.WaitAllReceive(t, ps[1:], 20, 20*time.Second)
		eventually.True(t, 20*time.Second, "simulcast media", func() bool { return ps[2].From("a/a") > 20 })
		r.Quiet().Store(true) // renegotiations cut short by Close may fail
		ps[2].Session.Close()
		sfu.Close()
		if own := ownGoroutines(); own != "" {
			t.Fatalf("goroutines of the SFU still running after Close:\n%s", own)
		}
	})
	// pion's timers and the clients' goroutines wind down shortly after.
	t.Cleanup(func() {
		if t.Failed() {
			buf := make([]byte, 1<<20)
			t.Logf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	})
	eventually.True(t, 10*time.Second, "the goroutines to wind down", func() bool { return runtime.NumGoroutine() <= before })
}

func ownGoroutines() string {
	buf := make([]byte, 1<<20)
	var own []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		// Callers' goroutines (the test clients answering) may be inside a
		// Session method; the SFU owns the ones it or pion started for it.
		if ownFrame.MatchString(g) && !strings.Contains(g, "created by github.com/openconsult/openconsult/media/nodetest") {
			own = append(own, g)
		}
	}
	return strings.Join(own, "\n\n")
}

// TestMetrics: the node's series count what it forwards, and carry kinds
// and reasons as labels, never room or member ids.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), Metrics: reg})
	r := nodetest.NewRoom(t)
	ps := []*nodetest.Participant{
		r.Join(sfu, "member-a", nodetest.Publish{Video: true, Audio: true}),
		r.Join(sfu, "member-b", nodetest.Publish{Video: true, Audio: true}),
	}
	nodetest.WaitAllReceive(t, ps, 20, 20*time.Second)
	eventually.True(t, 10*time.Second, "audio", func() bool { return ps[0].AudioFrom("member-b/member-b") > 10 })
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "member") || strings.Contains(l.GetValue(), "c_1") {
					t.Errorf("%s has an id in label %s=%q", name, l.GetName(), l.GetValue())
				}
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = value(m)
		}
	}
	for _, want := range []string{
		"sfu_forwarded_packets_total,kind=video",
		"sfu_forwarded_packets_total,kind=audio",
		"sfu_forwarded_bytes_total,kind=video",
		"sfu_keyframe_requests_total",
	} {
		if got[want] <= 0 {
			t.Errorf("%s = %v, want > 0", want, got[want])
		}
	}
	if got["sfu_participants"] != 2 || got["sfu_rooms"] != 1 {
		t.Errorf("participants %v, rooms %v; want 2 and 1", got["sfu_participants"], got["sfu_rooms"])
	}
	if _, err := media.New(media.Config{Metrics: reg}); err == nil {
		t.Error("a second node registered its series with the same registerer")
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// TestMetricsCountRepairsAndSwitches: retransmissions answered from the
// send cache and simulcast layer switches show in the series.
func TestMetricsCountRepairsAndSwitches(t *testing.T) {
	reg := prometheus.NewRegistry()
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), Metrics: reg})
	r := nodetest.NewRoom(t)
	r.Join(sfu, "cam", nodetest.Publish{Video: true})
	r.Join(sfu, "sim", nodetest.Publish{Simulcast: true})
	sub := r.Join(sfu, "sub", nodetest.Publish{})
	eventually.True(t, 20*time.Second, "media", func() bool { return sub.From("cam/cam") > 50 && sub.From("sim/sim") > 50 })
	log := sub.Log("cam/cam")
	if err := sub.Nack("cam/cam", log[len(log)-10].Seq, log[len(log)-5].Seq); err != nil {
		t.Fatal(err)
	}
	if err := sub.Session.View("sim", 100, 60); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the low layer", onLayer(sub, "sim/sim", 'q'))
	eventually.True(t, 5*time.Second, "the counters", func() bool {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				got[f.GetName()] += value(m)
			}
		}
		return got["sfu_nack_retransmits_total"] >= 2 && got["sfu_layer_switches_total"] >= 1
	})
}

// TestSRTPPrefersAES128GCM: a client offering pion's default order
// (AES-256-GCM first) gets AES-128-GCM, the node's first choice, in both
// directions of the call.
func TestSRTPPrefersAES128GCM(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings()})
	r := nodetest.NewRoom(t)
	pub := r.Join(sfu, "pub", nodetest.Publish{Video: true})
	sub := r.Join(sfu, "sub", nodetest.Publish{})
	eventually.True(t, 20*time.Second, "media", func() bool { return sub.From("pub/pub") > 0 })
	for _, p := range []*nodetest.Participant{pub, sub} {
		var ciphers []string
		for _, st := range p.PeerConnection().GetStats() {
			if ts, ok := st.(webrtc.TransportStats); ok {
				ciphers = append(ciphers, ts.SRTPCipher)
			}
		}
		if len(ciphers) != 1 || ciphers[0] != "SRTP_AEAD_AES_128_GCM" {
			t.Errorf("%s: SRTP profiles %q, want SRTP_AEAD_AES_128_GCM", p.Name, ciphers)
		}
	}
}

// TestEstimatorReadsSubscriberFeedback: the node numbers what it sends a
// subscriber, reads the subscriber's transport-wide feedback, and keeps an
// estimate on a clean loopback path at or above where it started.
func TestEstimatorReadsSubscriberFeedback(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings()})
	r := nodetest.NewRoom(t)
	r.Join(sfu, "pub", nodetest.Publish{Video: true})
	sub := r.Join(sfu, "sub", nodetest.Publish{})
	eventually.True(t, 20*time.Second, "ten feedback reports", func() bool { return media.FeedbackReports(sub.Session) >= 10 })
	if got := media.Estimate(sub.Session); got < 2_500_000 {
		t.Errorf("estimate %d bit/s on loopback, want at least the initial 2500000", got)
	}
}
