package media

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/pion/rtp"
)

func marshal(t testing.TB, p *rtp.Packet) *packet {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := newPacketPool().get()
	out.setLen(copy(out.buf, b))
	return out
}

func TestPacketParse(t *testing.T) {
	in := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 111, SequenceNumber: 65535, Timestamp: 4000000000, SSRC: 7,
		CSRC: []uint32{1, 2}}, Payload: []byte{1, 2, 3}}
	for _, profile := range []uint16{0xBEDE, 0x1000} {
		in.Header.Extensions = nil
		in.Header.Extension = true
		in.Header.ExtensionProfile = profile
		if err := in.Header.SetExtension(1, []byte{0x80 | 30}); err != nil {
			t.Fatal(err)
		}
		if err := in.Header.SetExtension(3, []byte("mid")); err != nil {
			t.Fatal(err)
		}
		p := marshal(t, in)
		if !p.parse() {
			t.Fatalf("profile %x: parse failed", profile)
		}
		if p.seq != 65535 || p.ts != 4000000000 || !p.marker || string(p.payload()) != "\x01\x02\x03" {
			t.Fatalf("profile %x: parsed %+v", profile, p)
		}
		if got := p.extension(1); len(got) != 1 || got[0] != 0x80|30 {
			t.Errorf("profile %x: audio level %v", profile, got)
		}
		if got := p.extension(3); string(got) != "mid" {
			t.Errorf("profile %x: extension 3 = %q", profile, got)
		}
		if got := p.extension(2); got != nil {
			t.Errorf("profile %x: absent extension = %v", profile, got)
		}
	}
	padded := marshal(t, &rtp.Packet{Header: rtp.Header{Version: 2, Padding: true}, Payload: []byte{9, 9}, PaddingSize: 4})
	if !padded.parse() || len(padded.payload()) != 2 {
		t.Fatalf("padding not stripped: %v", padded.payload())
	}
	for _, bad := range [][]byte{nil, {0x80}, make([]byte, 12), {0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9}, {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40}} {
		p := newPacketPool().get()
		p.setLen(copy(p.buf, bad))
		if len(bad) == 12 {
			p.buf[0] = 0 // version 0
		}
		if p.parse() {
			t.Errorf("parsed % x", bad)
		}
	}
}

// FuzzPacket: whatever arrives from a publisher, parsing and keyframe
// detection neither panic nor read outside the packet.
func FuzzPacket(f *testing.F) {
	f.Add([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0x7f, 0, 0, 0x10, 0})
	f.Add([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x1c, 0x85, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxPacket {
			return
		}
		p := newPacketPool().get()
		p.setLen(copy(p.buf, b))
		if !p.parse() {
			return
		}
		for id := uint8(0); id < 16; id++ {
			p.extension(id)
		}
		for _, k := range []keyframeDetector{vp8Keyframe, vp9Keyframe, h264Keyframe, av1Keyframe} {
			k(p.payload())
		}
	})
}

func TestKeyframeDetectors(t *testing.T) {
	tests := []struct {
		name    string
		detect  keyframeDetector
		payload []byte
		want    bool
	}{
		{"vp8 key", vp8Keyframe, []byte{0x10, 0x00}, true},
		{"vp8 inter", vp8Keyframe, []byte{0x10, 0x01}, false},
		{"vp8 continuation", vp8Keyframe, []byte{0x00, 0x00}, false},
		{"vp8 key with 15-bit picture id, tl0picidx, tid", vp8Keyframe, []byte{0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00}, true},
		{"vp8 inter with 7-bit picture id", vp8Keyframe, []byte{0x90, 0x80, 0x23, 0x01}, false},
		{"vp8 truncated", vp8Keyframe, []byte{0x90, 0x80}, false},
		{"vp9 key", vp9Keyframe, []byte{0x08}, true},
		{"vp9 inter", vp9Keyframe, []byte{0x48}, false},
		{"h264 idr", h264Keyframe, []byte{0x65, 0x88}, true},
		{"h264 sps in stap-a", h264Keyframe, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 fu-a idr start", h264Keyframe, []byte{0x7c, 0x85, 0x00}, true},
		{"h264 fu-a idr middle", h264Keyframe, []byte{0x7c, 0x05, 0x00}, false},
		{"h264 slice", h264Keyframe, []byte{0x41, 0x9a}, false},
		{"av1 new sequence", av1Keyframe, []byte{0x18}, true},
		{"av1 inter", av1Keyframe, []byte{0x10}, false},
	}
	for _, tt := range tests {
		if got := tt.detect(tt.payload); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if keyframeFunc("video/VP8") == nil || keyframeFunc("audio/opus") != nil {
		t.Error("keyframeFunc picks the wrong detectors")
	}
}

// TestRewriterWraps: sequence numbers and timestamps stay continuous
// across a layer switch near the 16-bit and 32-bit wrap.
func TestRewriterWraps(t *testing.T) {
	var r rewriter
	r.layer = -1
	mk := func(seq uint16, ts uint32, at int64) *packet { return &packet{seq: seq, ts: ts, arrival: at} }
	var lastSeq uint16
	var lastTS uint32
	for i := range 10 {
		s, ts, ok := r.next(mk(65530+uint16(i), 4294967000+uint32(i)*30, int64(i)*1e6), 90000)
		if !ok {
			t.Fatal("rejected")
		}
		lastSeq, lastTS = s, ts
	}
	// Another layer, its own numbering, 10 ms later.
	r.resync(mk(100, 5000, 19e6), 90000)
	s, ts, ok := r.next(mk(100, 5000, 19e6), 90000)
	if !ok || s != lastSeq+1 || ts != lastTS+900 {
		t.Fatalf("after the switch: seq %d ts %d, want %d %d", s, ts, lastSeq+1, lastTS+900)
	}
	if _, _, ok := r.next(mk(99, 4970, 19e6), 90000); ok {
		t.Fatal("a packet from before the switch was placed in the new mapping")
	}
}

func TestLayerForView(t *testing.T) {
	for _, tt := range []struct{ w, h, want int }{
		{0, 0, 0}, {160, 90, 0}, {320, 180, 0}, {640, 360, 1}, {480, 360, 1}, {800, 450, 2}, {1280, 720, 2}, {1920, 1080, 2},
	} {
		if got := layerForView(tt.w, tt.h); got != tt.want {
			t.Errorf("layerForView(%d, %d) = %d, want %d", tt.w, tt.h, got, tt.want)
		}
	}
}

// TestPacketBufferFitsItsLength: the received packets subscribers' NACK
// logs hold are most of the node's heap; each keeps a buffer of the
// smallest class that holds it, with its bytes, and a packet's cycle
// through the pool allocates nothing.
func TestPacketBufferFitsItsLength(t *testing.T) {
	tests := []struct{ n, buf int }{
		{12, smallBuf}, {100, smallBuf}, {256, smallBuf}, {257, mediumBuf}, {640, mediumBuf},
		{700, largeBuf}, {1024, largeBuf}, {1025, maxPacket}, {1500, maxPacket}, {2000, maxPacket},
	}
	pool := newPacketPool()
	for _, tt := range tests {
		p := pool.get()
		for i := range p.buf {
			p.buf[i] = byte(i * 7)
		}
		p.setLen(tt.n)
		if len(p.buf) != tt.buf || int(p.n) != min(tt.n, maxPacket) {
			t.Fatalf("%d bytes: buffer of %d, length %d; want a buffer of %d", tt.n, len(p.buf), p.n, tt.buf)
		}
		for i := range int(p.n) {
			if p.buf[i] != byte(i*7) {
				t.Fatalf("%d bytes: byte %d changed in the move", tt.n, i)
			}
		}
		pool.release(p)
	}
	if n := unsafe.Sizeof(packet{}); n > 64 {
		t.Fatalf("a packet's fields take %d bytes, want at most 64", n)
	}
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, tt := range tests {
			p := pool.get()
			p.setLen(tt.n)
			pool.release(p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per cycle through the pool, want 0", allocs)
	}
}

// TestCopyOfTakesTheSizeClass: a packet received whole is copied once
// into the buffer of its size class, as setLen would move it.
func TestCopyOfTakesTheSizeClass(t *testing.T) {
	pp := newPacketPool()
	for _, tt := range []struct{ n, class int }{{100, smallBuf}, {600, mediumBuf}, {1000, largeBuf}, {1200, maxPacket}, {2000, maxPacket}} {
		b := make([]byte, tt.n)
		for i := range b {
			b[i] = byte(i)
		}
		p := pp.copyOf(b)
		want := min(tt.n, maxPacket)
		if len(p.buf) != tt.class || int(p.n) != want || !bytes.Equal(p.buf[:p.n], b[:want]) || p.refs.Load() != 1 {
			t.Errorf("%d bytes: buffer of %d, length %d, %d refs", tt.n, len(p.buf), p.n, p.refs.Load())
		}
		pp.release(p)
	}
}
