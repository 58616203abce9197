package webm

import (
	"encoding/binary"
	"errors"
)

// nalus calls fn with each NAL unit of an AVC-format frame (each unit
// after its 4-byte big-endian length) until fn returns false. A length
// that runs past the frame ends the walk.
func nalus(frame []byte, fn func(nal []byte) bool) {
	for len(frame) >= 4 {
		n := binary.BigEndian.Uint32(frame)
		if n == 0 || uint64(n) > uint64(len(frame)-4) {
			return
		}
		if !fn(frame[4 : 4+n]) {
			return
		}
		frame = frame[4+n:]
	}
}

// NAL unit types.
const (
	nalIDR = 5
	nalSPS = 7
	nalPPS = 8
)

// h264Keyframe: a frame holding an IDR slice is a keyframe; its size
// comes from a sequence parameter set in the same frame.
func h264Keyframe(f []byte) (key bool, width, height int) {
	nalus(f, func(nal []byte) bool {
		switch nal[0] & 0x1f {
		case nalIDR:
			key = true
		case nalSPS:
			if w, h, ok := spsSize(nal); ok {
				width, height = w, h
			}
		}
		return true
	})
	if !key {
		return false, 0, 0
	}
	return key, width, height
}

// AVCConfig returns the AVCDecoderConfigurationRecord (ISO 14496-15,
// 5.2.4.1) of the first sequence and picture parameter sets of an
// AVC-format frame: the CodecPrivate of an H.264 track.
func AVCConfig(frame []byte) ([]byte, bool) {
	var sps, pps []byte
	nalus(frame, func(nal []byte) bool {
		switch t := nal[0] & 0x1f; {
		case t == nalSPS && sps == nil && len(nal) >= 4 && len(nal) <= 0xffff:
			sps = nal
		case t == nalPPS && pps == nil && len(nal) <= 0xffff:
			pps = nal
		}
		return sps == nil || pps == nil
	})
	if sps == nil || pps == nil {
		return nil, false
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1} // 4-byte lengths, one SPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1) // one PPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...), true
}

// bits reads a sequence parameter set's RBSP bit by bit.
type bits struct {
	b   []byte
	pos int
	err error
}

var errShort = errors.New("sps: too short")

func (r *bits) u(n int) uint32 {
	var v uint32
	for range n {
		if r.pos >= len(r.b)*8 {
			r.err = errShort
			return 0
		}
		v = v<<1 | uint32(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue reads an Exp-Golomb code of up to 31 leading zeros.
func (r *bits) ue() uint32 {
	zeros := 0
	for r.u(1) == 0 && r.err == nil {
		zeros++
		if zeros > 31 {
			r.err = errors.New("sps: Exp-Golomb code too long")
			return 0
		}
	}
	return (1<<zeros - 1) + r.u(zeros)
}

func (r *bits) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32((v + 1) / 2)
	}
	return -int32(v / 2)
}

// unescape drops the emulation prevention bytes (00 00 03).
func unescape(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// highProfiles carry chroma format and scaling lists in their SPS.
var highProfiles = map[uint32]bool{100: true, 110: true, 122: true, 244: true, 44: true, 83: true, 86: true, 118: true, 128: true, 138: true, 139: true, 134: true, 135: true}

// spsSize reads the picture size of a sequence parameter set (ITU-T
// H.264, 7.3.2.1.1), cropping applied.
func spsSize(nal []byte) (width, height int, ok bool) {
	r := &bits{b: unescape(nal)}
	r.u(8) // NAL header
	profile := r.u(8)
	r.u(16) // constraint flags, level
	r.ue()  // seq_parameter_set_id
	chroma := uint32(1)
	if highProfiles[profile] {
		if chroma = r.ue(); chroma == 3 {
			r.u(1) // separate_colour_plane_flag
		}
		r.ue()           // bit_depth_luma_minus8
		r.ue()           // bit_depth_chroma_minus8
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if r.u(1) == 1 {
					skipScalingList(r, map[bool]int{true: 16, false: 64}[i < 6])
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue()
	case 1:
		r.u(1)
		r.se()
		r.se()
		n := r.ue()
		if n > 255 {
			return 0, 0, false
		}
		for range n {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMbs := int64(r.ue()) + 1
	hMaps := int64(r.ue()) + 1
	frameMbsOnly := int64(r.u(1))
	if frameMbsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb int64
	if r.u(1) == 1 {
		cl, cr, ct, cb = int64(r.ue()), int64(r.ue()), int64(r.ue()), int64(r.ue())
	}
	if r.err != nil || chroma > 3 {
		return 0, 0, false
	}
	unitX, unitY := int64(1), 2-frameMbsOnly
	if chroma != 0 {
		subW, subH := int64(2), int64(2)
		if chroma == 2 {
			subH = 1
		} else if chroma == 3 {
			subW, subH = 1, 1
		}
		unitX, unitY = subW, subH*(2-frameMbsOnly)
	}
	w := wMbs*16 - (cl+cr)*unitX
	h := (2-frameMbsOnly)*hMaps*16 - (ct+cb)*unitY
	if w <= 0 || h <= 0 || w > 16384 || h > 16384 {
		return 0, 0, false
	}
	return int(w), int(h), true
}

func skipScalingList(r *bits, size int) {
	last, next := int32(8), int32(8)
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err != nil {
			return
		}
	}
}
