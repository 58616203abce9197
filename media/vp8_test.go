package media

import "testing"

// vp8Payload is a descriptor with a 15-bit picture ID and a TL0PICIDX,
// then one byte of frame.
func vp8Payload(pic uint16, tl0 uint8) []byte {
	return []byte{0x90, 0xc0, 0x80 | byte(pic>>8), byte(pic), tl0, 0x00}
}

// TestVP8PictureIDContinuous: across a switch between layers with their
// own picture ID and TL0PICIDX sequences, the subscriber sees both go on
// by one, and the shared payload is left alone.
func TestVP8PictureIDContinuous(t *testing.T) {
	var r vp8Rewriter
	check := func(in []byte, resync bool, wantPic uint16, wantTL0 uint8) {
		t.Helper()
		orig := append([]byte(nil), in...)
		out := r.rewrite(in, resync)
		d, _ := parseVP8(out)
		if got := d.pic(out); got != wantPic || out[d.tl0At] != wantTL0 {
			t.Fatalf("picture ID %d TL0PICIDX %d, want %d %d", got, out[d.tl0At], wantPic, wantTL0)
		}
		if string(in) != string(orig) {
			t.Fatal("the shared payload was modified")
		}
	}
	// Layer f near the 15-bit wrap.
	check(vp8Payload(32766, 250), false, 32766, 250)
	check(vp8Payload(32766, 250), false, 32766, 250) // second packet of the frame
	check(vp8Payload(32767, 251), false, 32767, 251)
	// Switch to layer q, which numbers from 100.
	check(vp8Payload(100, 7), true, 0, 252)
	check(vp8Payload(101, 8), false, 1, 253)
	// A late packet of the old frame keeps its place.
	check(vp8Payload(100, 7), false, 0, 252)
	// Without an extended descriptor there is nothing to rewrite.
	plain := []byte{0x10, 0x00}
	if out := r.rewrite(plain, false); &out[0] != &plain[0] {
		t.Fatal("a payload without picture ID was copied")
	}
}

// FuzzVP8Rewrite feeds the rewriter three payloads of any bytes, each
// with or without a resync, as a subscriber's writer does with what
// publishers send. It must never panic nor touch the shared payload, and
// what it returns must be the payload with at most the picture ID and
// TL0PICIDX changed, in place, with the descriptor's layout kept; after a
// resync both follow the last ones sent by one.
func FuzzVP8Rewrite(f *testing.F) {
	f.Add(vp8Payload(32767, 251), vp8Payload(100, 7), []byte{0x90, 0x80, 0x05, 0x00}, byte(2))
	f.Add([]byte{0x90, 0x40, 0x09, 0x00}, []byte{0x90, 0xc0, 0x7f, 0xff}, []byte{0x80}, byte(7))
	f.Add([]byte{0x10, 0x00}, []byte{}, []byte{0x90, 0xe0, 0x80, 0x01, 0x02, 0x20, 0x00}, byte(5))
	// A payload longer than any packet the node reads, after a short one
	// sized the scratch buffer.
	f.Add([]byte{0x90, 0x80, 0x01, 0x00}, append([]byte{0x90, 0x80, 0x02}, make([]byte, 2*maxPacket)...), []byte{}, byte(2))
	f.Fuzz(func(t *testing.T, a, b, c []byte, resyncs byte) {
		var r vp8Rewriter
		for i, in := range [][]byte{a, b, c} {
			checkRewrite(t, &r, in, resyncs&(1<<i) != 0)
		}
	})
}

func checkRewrite(t *testing.T, r *vp8Rewriter, in []byte, resync bool) {
	t.Helper()
	orig := append([]byte(nil), in...)
	before := *r
	out := r.rewrite(in, resync)
	if string(in) != string(orig) {
		t.Fatal("the shared payload was modified")
	}
	if len(out) != len(in) {
		t.Fatalf("%d bytes out of %d", len(out), len(in))
	}
	d, ok := parseVP8(in)
	if !ok || (d.picAt == 0 && d.tl0At == 0) {
		if len(in) > 0 && &out[0] != &in[0] {
			t.Fatal("a payload with nothing to rewrite was copied")
		}
		return
	}
	if od, ok := parseVP8(out); !ok || od != d {
		t.Fatalf("descriptor %+v became %+v", d, od)
	}
	for i := range in {
		if i != d.picAt && !(d.wide && i == d.picAt+1) && i != d.tl0At && out[i] != in[i] {
			t.Fatalf("byte %d changed from %#x to %#x", i, in[i], out[i])
		}
	}
	if !before.started || !resync {
		if before.picOffset == 0 && before.tl0Offset == 0 && string(out) != string(in) {
			t.Fatal("rewritten without an offset to apply")
		}
		return
	}
	if d.picAt != 0 {
		mask := uint16(0x7fff)
		if !d.wide {
			mask = 0x7f
		}
		if got, want := d.pic(out), (before.lastPic+1)&mask; got != want {
			t.Fatalf("picture ID %d after a resync following %d, want %d", got, before.lastPic, want)
		}
	}
	if d.tl0At != 0 && out[d.tl0At] != before.lastTL0+1 {
		t.Fatalf("TL0PICIDX %d after a resync following %d", out[d.tl0At], before.lastTL0)
	}
}
