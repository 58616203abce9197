package webm

import (
	"encoding/binary"

	"github.com/pion/rtp/codecs/vp9"
)

// Keyframe reads a video frame's first bytes: whether it is a keyframe,
// and then its size in pixels (0 when the frame does not say). A frame
// too short or malformed is no keyframe.
func Keyframe(codecID string, frame []byte) (key bool, width, height int) {
	switch codecID {
	case CodecVP8:
		return vp8Keyframe(frame)
	case CodecVP9:
		return vp9Keyframe(frame)
	case CodecH264:
		return h264Keyframe(frame)
	}
	return false, 0, 0
}

// vp8Keyframe reads the frame tag and, of a keyframe, the start code and
// the 14-bit width and height (RFC 6386, 9.1).
func vp8Keyframe(f []byte) (bool, int, int) {
	if len(f) < 10 || f[0]&1 != 0 {
		return false, 0, 0
	}
	if f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return false, 0, 0
	}
	w := int(binary.LittleEndian.Uint16(f[6:]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(f[8:]) & 0x3fff)
	return true, w, h
}

// vp9Keyframe reads the uncompressed header of the frame (of the first
// frame of a superframe).
func vp9Keyframe(f []byte) (bool, int, int) {
	var h vp9.Header
	if err := h.Unmarshal(f); err != nil || h.ShowExistingFrame || h.NonKeyFrame || h.FrameSize == nil {
		return false, 0, 0
	}
	return true, int(h.Width()), int(h.Height())
}
