package media

import "encoding/binary"

// twccFeedback is one transport-wide congestion control feedback packet
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1), read
// in place: pion's rtcp package makes an object per status chunk and per
// arrival delta, about one allocation per packet reported.
type twccFeedback struct {
	base    uint16 // transport-wide sequence number of the first status
	count   uint16 // statuses
	refTime uint32 // 24 bits, in units of 64 ms
	chunks  []byte // the status chunks, two bytes each
	deltas  []byte // the arrival deltas, after the chunks
}

// TWCC status symbols, as pion's rtcp names them.
const (
	twccNotReceived   = 0
	twccSmallDelta    = 1
	twccLargeDelta    = 2
	twccTypeFeedback  = rtcpRTPFB
	twccFormat        = 15
	rtcpHeaderLength  = 4
	twccChunksOffset  = 20
	twccDeltaUnitUsec = 250
)

// nextRTCP splits the first packet off a compound RTCP packet: its packet
// type, its format (FMT or report count), the packet with its header, and
// what follows; ok is false for a malformed rest.
func nextRTCP(b []byte) (pt, format uint8, pkt, rest []byte, ok bool) {
	if len(b) < rtcpHeaderLength || b[0]>>6 != 2 {
		return 0, 0, nil, nil, false
	}
	n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
	if n > len(b) {
		return 0, 0, nil, nil, false
	}
	return b[1], b[0] & 0x1f, b[:n], b[n:], true
}

// parseTWCC reads pkt, one RTCP packet of type 205 format 15.
func parseTWCC(pkt []byte) (twccFeedback, bool) {
	var f twccFeedback
	if len(pkt) < twccChunksOffset {
		return f, false
	}
	f.base = binary.BigEndian.Uint16(pkt[12:])
	f.count = binary.BigEndian.Uint16(pkt[14:])
	f.refTime = uint32(pkt[16])<<16 | uint32(pkt[17])<<8 | uint32(pkt[18])
	pos := twccChunksOffset
	for left := int(f.count); left > 0; pos += 2 {
		if pos+2 > len(pkt) {
			return f, false
		}
		left -= chunkSymbols(binary.BigEndian.Uint16(pkt[pos:]))
	}
	f.chunks, f.deltas = pkt[twccChunksOffset:pos], pkt[pos:]
	return f, true
}

// chunkSymbols is how many statuses a chunk carries.
func chunkSymbols(c uint16) int {
	switch {
	case c&0x8000 == 0:
		return int(c & 0x1fff) // run length
	case c&0x4000 == 0:
		return 14 // one-bit symbols
	default:
		return 7 // two-bit symbols
	}
}

// walk calls fn for each status in order with its symbol and, for a
// received packet, its arrival delta in microseconds (0 otherwise). It
// stops early, reporting false, when the deltas run out.
func (f twccFeedback) walk(fn func(sym uint16, deltaUsec int64)) bool {
	left := int(f.count)
	deltas := f.deltas
	visit := func(sym uint16) bool {
		var d int64
		switch sym {
		case twccSmallDelta:
			if len(deltas) < 1 {
				return false
			}
			d, deltas = int64(deltas[0])*twccDeltaUnitUsec, deltas[1:]
		case twccLargeDelta:
			if len(deltas) < 2 {
				return false
			}
			d, deltas = int64(int16(binary.BigEndian.Uint16(deltas)))*twccDeltaUnitUsec, deltas[2:]
		}
		fn(sym, d)
		left--
		return true
	}
	for i := 0; i+2 <= len(f.chunks) && left > 0; i += 2 {
		c := binary.BigEndian.Uint16(f.chunks[i:])
		switch {
		case c&0x8000 == 0:
			sym := c >> 13 & 0x3
			for range min(int(c&0x1fff), left) {
				if !visit(sym) {
					return false
				}
			}
		case c&0x4000 == 0:
			for j := 13; j >= 0 && left > 0; j-- {
				if !visit(c >> j & 0x1) {
					return false
				}
			}
		default:
			for j := 6; j >= 0 && left > 0; j-- {
				if !visit(c >> (2 * j) & 0x3) {
					return false
				}
			}
		}
	}
	return true
}
