package main

import (
	"encoding/binary"
	"errors"
)

// Every packet a synthetic participant sends carries a stamp after the
// codec's own headers: who sent it, on which stream, its place in that
// stream and when it left. Subscribers read it back to measure latency and
// loss without trusting anything the SFU rewrites (RTP sequence numbers,
// SSRCs, VP8 picture ids).
const (
	stampMagic = 0x5346554c // "SFUL"
	stampLen   = 20

	// The VP8 payload descriptor we write (RFC 7741 section 4.2): X and S
	// bits, then I with a 15-bit picture id, as browsers send it. SFUs
	// rewrite picture ids when they switch layers, so the reader parses
	// the descriptor rather than assuming its length.
	vp8DescLen = 4
	// The VP8 frame header of RFC 6386 section 9.1 that starts a frame: a
	// 3-byte tag, and for a keyframe the start code and dimensions.
	vp8KeyHeaderLen   = 10
	vp8InterHeaderLen = 3

	opusTOC = 0x78 // a SILK wideband 20 ms frame, as an idle voice sends
)

// stamp is what the load generator writes into each payload.
type stamp struct {
	Publisher uint16 // the sending participant's index
	Stream    uint8  // streamAudio, or the simulcast layer's index
	Keyframe  bool   // the packet starts a keyframe
	Start     bool   // the packet starts a frame
	Seq       uint32 // per publisher and stream, without gaps at the sender
	SentNanos int64  // monotonic nanoseconds since the run's shared base
}

// streamAudio marks audio stamps; video layers are 0 (smallest) upwards.
const streamAudio = 0xff

const (
	flagKeyframe = 1 << iota
	flagStart
)

func (s stamp) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], stampMagic)
	binary.BigEndian.PutUint16(b[4:], s.Publisher)
	b[6] = s.Stream
	var flags byte
	if s.Keyframe {
		flags |= flagKeyframe
	}
	if s.Start {
		flags |= flagStart
	}
	b[7] = flags
	binary.BigEndian.PutUint32(b[8:], s.Seq)
	binary.BigEndian.PutUint64(b[12:], uint64(s.SentNanos))
}

var errNoStamp = errors.New("payload carries no load stamp")

func readStamp(b []byte) (stamp, error) {
	if len(b) < stampLen || binary.BigEndian.Uint32(b) != stampMagic {
		return stamp{}, errNoStamp
	}
	return stamp{
		Publisher: binary.BigEndian.Uint16(b[4:]),
		Stream:    b[6],
		Keyframe:  b[7]&flagKeyframe != 0,
		Start:     b[7]&flagStart != 0,
		Seq:       binary.BigEndian.Uint32(b[8:]),
		SentNanos: int64(binary.BigEndian.Uint64(b[12:])),
	}, nil
}

// minVP8Payload is the smallest video payload: descriptor, keyframe header
// and stamp.
const minVP8Payload = vp8DescLen + vp8KeyHeaderLen + stampLen

// encodeVP8 fills b (at least minVP8Payload bytes; the rest is padding
// that stands for coded picture data) with a valid VP8 RTP payload: the
// descriptor with S set on the first packet of a frame, the frame header
// whose P bit marks keyframes (what an SFU reads to switch layers), then
// the stamp. It returns b.
func encodeVP8(b []byte, pictureID uint16, s stamp) []byte {
	clear(b)
	b[0] = 0x80 // X: extension bytes follow; PID 0
	if s.Start {
		b[0] |= 0x10 // S: start of a VP8 partition
	}
	b[1] = 0x80                           // I: a picture id follows
	b[2] = 0x80 | byte(pictureID>>8)&0x7f // M: 15-bit picture id
	b[3] = byte(pictureID)                //
	off := vp8DescLen
	if s.Start {
		// Frame tag: bit 0 P (0 for a keyframe), bits 1-3 version 0,
		// bit 4 show_frame, bits 5-23 first partition size.
		const partSize = 10
		tag := uint32(partSize)<<5 | 1<<4
		if !s.Keyframe {
			tag |= 1
		}
		b[off], b[off+1], b[off+2] = byte(tag), byte(tag>>8), byte(tag>>16)
		if s.Keyframe {
			b[off+3], b[off+4], b[off+5] = 0x9d, 0x01, 0x2a // start code
			binary.LittleEndian.PutUint16(b[off+6:], 1280)
			binary.LittleEndian.PutUint16(b[off+8:], 720)
			off += vp8KeyHeaderLen
		} else {
			off += vp8InterHeaderLen
		}
	}
	s.put(b[off:])
	return b
}

var errVP8 = errors.New("malformed VP8 payload")

// decodeVP8 parses a VP8 RTP payload as an SFU may have rewritten it and
// returns the stamp and whether the packet starts a keyframe, as read from
// the VP8 headers themselves.
func decodeVP8(b []byte) (stamp, bool, error) {
	if len(b) < 1 {
		return stamp{}, false, errVP8
	}
	start := b[0]&0x10 != 0 && b[0]&0x07 == 0
	off := 1
	if b[0]&0x80 != 0 { // X
		if len(b) < 2 {
			return stamp{}, false, errVP8
		}
		ext := b[1]
		off = 2
		if ext&0x80 != 0 { // I
			if len(b) <= off {
				return stamp{}, false, errVP8
			}
			if b[off]&0x80 != 0 { // M: 15-bit picture id
				off++
			}
			off++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			off++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			off++
		}
	}
	key := false
	if start {
		if len(b) < off+vp8InterHeaderLen {
			return stamp{}, false, errVP8
		}
		key = b[off]&0x01 == 0
		if key {
			off += vp8KeyHeaderLen
		} else {
			off += vp8InterHeaderLen
		}
	}
	if len(b) < off {
		return stamp{}, false, errVP8
	}
	s, err := readStamp(b[off:])
	return s, key, err
}

// minAudioPayload is the smallest audio payload: TOC byte and stamp.
const minAudioPayload = 1 + stampLen

// encodeAudio fills b with an Opus-like payload: a TOC byte, the stamp and
// padding standing for the coded frame.
func encodeAudio(b []byte, s stamp) []byte {
	clear(b)
	b[0] = opusTOC
	s.put(b[1:])
	return b
}

func decodeAudio(b []byte) (stamp, error) {
	if len(b) < minAudioPayload {
		return stamp{}, errNoStamp
	}
	return readStamp(b[1:])
}
