package webm

import "testing"

func FuzzKeyframe(f *testing.F) {
	f.Add([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}, false)
	f.Add([]byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x27, 0xf0, 0x1d, 0xf0}, true)
	f.Add([]byte{0, 0, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 2, 0x68, 0xce, 0, 0, 0, 2, 0x65, 0x88}, false)
	f.Fuzz(func(t *testing.T, frame []byte, vp9 bool) {
		codec := CodecVP8
		if vp9 {
			codec = CodecVP9
		}
		if len(frame) > 0 && frame[0] == 0 {
			codec = CodecH264
			if cfg, ok := AVCConfig(frame); ok && (cfg[0] != 1 || len(cfg) < 11) {
				t.Fatalf("config %x", cfg)
			}
		}
		key, w, h := Keyframe(codec, frame)
		if !key && (w != 0 || h != 0) {
			t.Fatalf("not a keyframe but %dx%d", w, h)
		}
		if w < 0 || h < 0 || w > 65536 || h > 65536 {
			t.Fatalf("size %dx%d", w, h)
		}
	})
}
