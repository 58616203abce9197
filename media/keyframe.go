package media

import "strings"

// keyframeDetector reports whether an RTP payload starts a keyframe, for
// the codecs browsers send. Switching a subscriber to another simulcast
// layer, or resuming after its queue overflowed, waits for such a packet:
// anything else would hand the decoder a frame it cannot decode.
type keyframeDetector func(payload []byte) bool

// keyframeFunc returns the detector for a codec, or nil when the codec is
// unknown and every packet must be forwarded as it comes.
func keyframeFunc(mime string) keyframeDetector {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return vp8Keyframe
	case "video/vp9":
		return vp9Keyframe
	case "video/h264":
		return h264Keyframe
	case "video/av1":
		return av1Keyframe
	}
	return nil
}

// vp8Keyframe: RFC 7741 payload descriptor, then the VP8 frame tag whose
// lowest bit is 0 on a key frame.
func vp8Keyframe(b []byte) bool {
	if len(b) < 1 {
		return false
	}
	if b[0]&0x10 == 0 || b[0]&0x07 != 0 { // S: start of partition 0
		return false
	}
	i := 1
	if b[0]&0x80 != 0 { // X
		if len(b) < 2 {
			return false
		}
		x := b[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(b) <= i {
				return false
			}
			if b[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	return len(b) > i && b[i]&0x01 == 0
}

// vp9Keyframe: RFC 9628 descriptor; B (start of frame) without P (inter
// picture predicted).
func vp9Keyframe(b []byte) bool {
	return len(b) > 0 && b[0]&0x40 == 0 && b[0]&0x08 != 0
}

// h264Keyframe: an IDR slice or SPS, alone, in a STAP-A, or starting a FU-A.
func h264Keyframe(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	switch nal := b[0] & 0x1f; nal {
	case 5, 7:
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(b); {
			size := int(b[i])<<8 | int(b[i+1])
			if t := b[i+2] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += 2 + size
		}
	case 28: // FU-A
		t := b[1] & 0x1f
		return b[1]&0x80 != 0 && (t == 5 || t == 7)
	}
	return false
}

// av1Keyframe: the aggregation header's N bit starts a new coded video
// sequence, which begins with a key frame.
func av1Keyframe(b []byte) bool {
	return len(b) > 0 && b[0]&0x08 != 0
}
