package media

import (
	"testing"

	"github.com/pion/rtp"
)

// simPacket makes packet n (3 to a frame) of simulcast layer l: its own
// sequence numbers, timestamps and picture IDs, a keyframe when key.
func simPacket(h *harness, l int, n uint16, key bool) *packet {
	p := h.sfu.pool.get()
	hdr := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: n + uint16(l)*10000, Timestamp: uint32(n/3)*3000 + uint32(l)*7777777, Marker: n%3 == 2}
	hl, _ := hdr.MarshalTo(p.buf[:])
	pl := p.buf[hl : hl+200]
	clear(pl)
	pic := (uint16(l)*9000 + n/3) & 0x7fff
	pl[0], pl[1], pl[2], pl[3] = 0x80, 0x80, 0x80|byte(pic>>8), byte(pic)
	pl[4] = 0x01
	if n%3 == 0 {
		pl[0] |= 0x10
		if key {
			pl[4] = 0x00
		}
	}
	pl[5] = byte(l)
	p.setLen(hl + 200)
	p.parse()
	p.layer = int8(l)
	p.arrival = h.sfu.now()
	p.keyframe = vp8Keyframe(p.payload())
	return p
}

// TestSimulcastSwitchAtKeyframe: a subscriber starts on its target layer
// at that layer's keyframe, keeps the old layer until the new one's
// keyframe, and sees one stream throughout.
func TestSimulcastSwitchAtKeyframe(t *testing.T) {
	h := newHarness(t, kindVideo)
	h.pub.simulcast = true
	for l := range maxLayers {
		h.pub.layers[l].Store(&layer{ssrc: uint32(l + 1)})
	}
	rec := &recorder{}
	d := h.subscribe(t, rec, false)
	d.target.Store(2)
	write := func(p *packet) {
		h.forward(p)
		for len(d.queue) > 0 {
			q := <-d.queue
			d.write(q.p, q.resume)
			h.sfu.pool.release(q.p)
		}
	}
	var n uint16
	step := func(frames int, keyOn int) { // keyOn: the layer whose frame 0 is a keyframe, -1 none
		for f := range frames {
			for range 3 {
				for l := range maxLayers {
					write(simPacket(h, l, n, f == 0 && l == keyOn && n%3 == 0))
				}
				n++
			}
		}
	}
	step(5, -1) // no keyframe yet: nothing forwarded
	if rec.count() != 0 {
		t.Fatalf("%d packets forwarded before a keyframe", rec.count())
	}
	step(10, 2) // the full layer's keyframe
	d.target.Store(0)
	step(5, -1) // still the full layer, waiting for the low one's keyframe
	step(10, 0)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.key[0] || rec.layerOf(0) != 2 {
		t.Fatalf("started with layer %d keyframe %v", rec.layerOf(0), rec.key[0])
	}
	switched := false
	for i := 1; i < len(rec.got); i++ {
		if rec.got[i].SequenceNumber != rec.got[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, rec.got[i].SequenceNumber, rec.got[i-1].SequenceNumber)
		}
		if dt := rec.got[i].Timestamp - rec.got[i-1].Timestamp; dt > 3000 {
			t.Fatalf("packet %d: timestamp jumps by %d", i, dt)
		}
		if d := (rec.pic[i] - rec.pic[i-1]) & 0x7fff; d > 1 {
			t.Fatalf("packet %d: picture ID %d after %d", i, rec.pic[i], rec.pic[i-1])
		}
		if rec.layerOf(i) != rec.layerOf(i-1) {
			if switched || !rec.key[i] || rec.layerOf(i) != 0 {
				t.Fatalf("packet %d: switch to layer %d, keyframe %v", i, rec.layerOf(i), rec.key[i])
			}
			switched = true
		}
	}
	if !switched {
		t.Fatal("never switched to the low layer")
	}
}

// Simulcast descriptors: the layer byte and picture ID the test packets
// carry, as the recorder saw them.
func (r *recorder) layerOf(i int) byte { return r.raw[i][5] }

// BenchmarkForwardSimulcastVP8 is BenchmarkForwardPacket for the top
// layer of a VP8 simulcast track, which adds the per-subscriber copy of
// the payload that the picture ID rewrite needs.
func BenchmarkForwardSimulcastVP8(b *testing.B) {
	h := newHarness(b, kindVideo)
	h.pub.simulcast = true
	l := &layer{ssrc: 3}
	h.pub.layers[2].Store(l)
	var subs []*downTrack
	for range 3 {
		d := h.subscribe(b, discard{}, false)
		d.target.Store(2)
		subs = append(subs, d)
	}
	forward := func(p *packet) { h.forwardAndWrite(p, subs) }
	forward(simPacket(h, 2, 0, true)) // start the subscribers on the layer
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := simPacket(h, 2, uint16(i+1), false)
		l.account(p)
		forward(p)
	}
}
