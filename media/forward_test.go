package media

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
)

// harness is a publication without a network: packets are offered as the
// reader goroutine would, and subscribers' transports are writers the
// test controls.
type harness struct {
	sfu  *SFU
	pub  *publication
	plis atomic.Int64
	seq  uint16
}

func newHarness(t testing.TB, kind int) *harness {
	m, err := newMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{sfu: &SFU{pool: newPacketPool(), epoch: time.Now(), metrics: m}}
	h.pub = &publication{sfu: h.sfu, key: "p/v", trackID: "v", streamID: "p/p", kind: kind,
		codec:     webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}},
		clockRate: 90000, keyframe: vp8Keyframe,
		sendPLI: func(uint32) error { h.plis.Add(1); return nil }}
	h.pub.subs.Store(&[]*downTrack{})
	l := &layer{ssrc: 1}
	l.lastPLI.Store(-keyframeInterval)
	h.pub.layers[0].Store(l)
	return h
}

// subscribe adds a subscriber writing to w, with the writer of its
// connection running until the test ends.
func (h *harness) subscribe(t testing.TB, w webrtc.TrackLocalWriter, run bool) *downTrack {
	d := newDownTrack(h.pub, nil)
	d.bound.Store(&binding{ssrc: 4242, pt: 96, ws: w})
	if run {
		cw := newConnWriter(h.sfu, nil)
		d.w = cw
		cw.add(d)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { cw.run(done) })
		t.Cleanup(func() { d.stop(); close(done); wg.Wait() })
	}
	subs := append(append([]*downTrack(nil), *h.pub.subs.Load()...), d)
	h.pub.subs.Store(&subs)
	return d
}

// packet makes the next VP8 packet of a stream of 3-packet frames with a
// keyframe every 30 frames, as the reader would hand it on.
func (h *harness) packet() *packet {
	p := h.sfu.pool.get()
	n := h.seq
	h.seq++
	hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: n, Timestamp: uint32(n/3) * 3000, Marker: n%3 == 2, SSRC: 1}
	hl, _ := hdr.MarshalTo(p.buf[:])
	payload := p.buf[hl : hl+600]
	clear(payload)
	payload[1] = 0x01
	binary.BigEndian.PutUint16(payload[3:], n) // the original, for the test's eyes
	if n%3 == 0 {
		payload[0] = 0x10
		if n%90 == 0 {
			payload[1] = 0x00
		}
	}
	p.setLen(hl + 600)
	p.parse()
	p.arrival = h.sfu.now()
	p.keyframe = vp8Keyframe(p.payload())
	return p
}

func (h *harness) forward(p *packet) {
	for _, d := range *h.pub.subs.Load() {
		d.offer(p)
	}
	h.sfu.pool.release(p)
}

// forwardAndWrite offers p to subs and runs each one's writer for it on
// the caller's goroutine, so that a benchmark measures CPU per packet, not
// scheduling.
func (h *harness) forwardAndWrite(p *packet, subs []*downTrack) {
	for _, d := range subs {
		d.offer(p)
	}
	h.sfu.pool.release(p)
	for _, d := range subs {
		q := <-d.queue
		d.write(q.p, q.resume)
		h.sfu.pool.release(q.p)
	}
}

// recorder is a subscriber's transport that notes what it is given, and
// blocks while gate is held, like a TCP connection whose peer stopped
// reading.
type recorder struct {
	gate sync.RWMutex
	mu   sync.Mutex
	got  []rtp.Header
	key  []bool
	orig []uint16 // sequence numbers as published
	raw  [][]byte // the first bytes of each payload
	pic  []uint16 // VP8 picture IDs, when the descriptor has one
}

func (r *recorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	r.gate.RLock()
	defer r.gate.RUnlock()
	r.mu.Lock()
	r.got = append(r.got, *h)
	r.key = append(r.key, vp8Keyframe(payload))
	r.orig = append(r.orig, binary.BigEndian.Uint16(payload[3:]))
	r.raw = append(r.raw, append([]byte(nil), payload[:8]...))
	if d, ok := parseVP8(payload); ok && d.picAt != 0 {
		r.pic = append(r.pic, d.pic(payload))
	} else {
		r.pic = append(r.pic, 0)
	}
	r.mu.Unlock()
	return 12 + len(payload), nil
}

func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestBlockedSubscriberDoesNotStallOthers: one subscriber's transport
// blocks; the publisher's reader never waits for it, the other subscriber
// receives every packet, and the blocked one, once it drains, resumes at a
// keyframe with no gap in its sequence numbers.
func TestBlockedSubscriberDoesNotStallOthers(t *testing.T) {
	h := newHarness(t, kindVideo)
	fast, slow := &recorder{}, &recorder{}
	slow.gate.Lock()
	dFast := h.subscribe(t, fast, true)
	dSlow := h.subscribe(t, slow, true)
	const total = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range total {
			for len(dFast.queue) > videoQueue/2 {
				time.Sleep(100 * time.Microsecond) // pace to the fast subscriber only
			}
			h.forward(h.packet())
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the reader blocked on a stalled subscriber")
	}
	eventually.True(t, 10*time.Second, "every packet at the fast subscriber", func() bool { return fast.count() == total })
	checkSeq(t, "fast", fast, false)
	if n := testutil.ToFloat64(h.sfu.metrics.dropped[kindVideo][dropQueueFull]); n == 0 {
		t.Error("no queue_full drops counted")
	}
	if h.plis.Load() == 0 {
		t.Error("no keyframe requested after the overflow")
	}
	slow.gate.Unlock()
	eventually.True(t, 10*time.Second, "the slow subscriber's queue to drain", func() bool { return len(dSlow.queue) == 0 })
	before := slow.count()
	for range 200 { // the publisher's next keyframe, and some
		for len(dSlow.queue) > videoQueue/2 || len(dFast.queue) > videoQueue/2 {
			time.Sleep(100 * time.Microsecond)
		}
		h.forward(h.packet())
	}
	eventually.True(t, 10*time.Second, "the slow subscriber to resume up to the last packet", func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return len(slow.orig) > before && slow.orig[len(slow.orig)-1] == total+199
	})
	checkSeq(t, "slow", slow, true)
}

// checkSeq checks that rec's sequence numbers are continuous; with
// resumed, that the stream went on at a keyframe after a dropped run.
func checkSeq(t *testing.T, name string, rec *recorder, resumed bool) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	gapAtKey := false
	for i := 1; i < len(rec.got); i++ {
		if rec.got[i].SequenceNumber != rec.got[i-1].SequenceNumber+1 {
			t.Fatalf("%s: sequence number %d after %d", name, rec.got[i].SequenceNumber, rec.got[i-1].SequenceNumber)
		}
		if rec.got[i].SSRC != 4242 || rec.got[i].PayloadType != 96 {
			t.Fatalf("%s: SSRC %d PT %d, want the subscriber's own", name, rec.got[i].SSRC, rec.got[i].PayloadType)
		}
		if int32(rec.got[i].Timestamp-rec.got[i-1].Timestamp) < 0 {
			t.Fatalf("%s: timestamp %d after %d", name, rec.got[i].Timestamp, rec.got[i-1].Timestamp)
		}
		if resumed && rec.orig[i] != rec.orig[i-1]+1 {
			gapAtKey = gapAtKey || rec.key[i]
			if !rec.key[i] {
				t.Fatalf("%s: resumed at packet %d, not a keyframe", name, i)
			}
		}
	}
	if resumed && !gapAtKey {
		t.Fatalf("%s: no resumption after a dropped run", name)
	}
}

// TestAudioOverflowDropsOnlyThePacket: a full audio queue loses the packet
// that did not fit and nothing after it.
func TestAudioOverflowDropsOnlyThePacket(t *testing.T) {
	h := newHarness(t, kindAudio)
	h.pub.keyframe = nil
	rec := &recorder{}
	d := h.subscribe(t, rec, false) // no writer yet: the queue fills
	for range audioQueue + 5 {
		h.forward(h.packet())
	}
	if n := testutil.ToFloat64(h.sfu.metrics.dropped[kindAudio][dropQueueFull]); n != 5 {
		t.Fatalf("%v audio packets dropped, want 5", n)
	}
	var wg sync.WaitGroup
	wg.Go(d.run)
	defer func() { d.stop(); wg.Wait() }()
	eventually.True(t, 10*time.Second, "the queued audio packets", func() bool { return rec.count() == audioQueue })
	h.forward(h.packet()) // the next one goes through at once
	eventually.True(t, 10*time.Second, "the next audio packet", func() bool { return rec.count() == audioQueue+1 })
}

// discard is a transport that takes everything, for the benchmark.
type discard struct{}

func (discard) WriteRTP(h *rtp.Header, payload []byte) (int, error) { return 12 + len(payload), nil }
func (discard) Write(b []byte) (int, error)                         { return len(b), nil }

// BenchmarkForwardPacket measures the SFU's own work per published video
// packet forwarded to three subscribers: header parse, keyframe check,
// rate accounting, the three queues, and each writer's rewrite, up to the
// call into pion's interceptors (which discard stands in for).
func BenchmarkForwardPacket(b *testing.B) {
	h := newHarness(b, kindVideo)
	var subs []*downTrack
	for range 3 {
		subs = append(subs, h.subscribe(b, discard{}, false))
	}
	h.benchForward(b, subs)
}

// benchForward offers b.N packets, each one parsed as the reader would,
// to subs and runs their writers on the caller's goroutine.
func (h *harness) benchForward(b *testing.B, subs []*downTrack) {
	l := h.pub.layers[0].Load()
	tmpl := h.packet()
	raw := append([]byte(nil), tmpl.buf[:tmpl.n]...)
	h.sfu.pool.release(tmpl)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := h.sfu.pool.get()
		p.setLen(copy(p.buf[:], raw))
		binary.BigEndian.PutUint16(p.buf[2:], uint16(i))
		if !p.parse() {
			b.Fatal("parse")
		}
		p.arrival = h.sfu.now()
		p.keyframe = h.pub.keyframe(p.payload())
		l.account(p)
		h.forwardAndWrite(p, subs)
	}
}

// TestResumedVideoAsksAgainForItsKeyframe: a video shown again waits for
// a keyframe. When its request is throttled because another subscriber
// asked just before (and that keyframe has gone by), or is lost, the
// subscriber asks again while it waits, rather than stay dark until the
// publisher happens to send one.
func TestResumedVideoAsksAgainForItsKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, kindVideo)
		d := h.subscribe(t, &recorder{}, false)
		d.setPaused(true)
		h.pub.requestKeyframe(0) // another subscriber's request
		d.setPaused(false)       // throttled: within keyframeInterval
		if got := h.plis.Load(); got != 1 {
			t.Fatalf("%d keyframe requests before waiting, want 1 (the second throttled)", got)
		}
		for range 50 { // one second of frames without a keyframe
			time.Sleep(20 * time.Millisecond)
			p := h.packet()
			p.keyframe = false
			h.forward(p)
		}
		if got := h.plis.Load(); got < 2 {
			t.Errorf("%d keyframe requests after a second of waiting, want the subscriber to ask again", got)
		}
		if got := h.plis.Load(); got > 3 {
			t.Errorf("%d keyframe requests in a second, want at most one per %v", got, time.Duration(keyframeRetry))
		}
	})
}
