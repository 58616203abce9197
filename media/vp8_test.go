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
