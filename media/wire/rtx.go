package wire

import (
	"encoding/binary"
	"errors"

	"github.com/pion/rtp"
)

// UnwrapRTX turns a retransmission received on an RTX stream (RFC 4588
// section 4) back into the packet it repairs, in place: the original
// sequence number that opens the payload replaces the RTX one, and the
// SSRC and payload type become the media stream's; the header keeps its
// extensions, the marker and the timestamp. p is the whole RTX packet,
// h its parsed header; the result is a sub-slice of p, and h describes
// it afterwards. Padding is dropped.
func UnwrapRTX(p []byte, h *rtp.Header, ssrc uint32, pt uint8) ([]byte, error) {
	n, ok := headerLen(p)
	if !ok {
		return nil, errors.New("wire: an RTX packet shorter than its header")
	}
	end := len(p)
	if h.Padding {
		if end == 0 || int(p[end-1]) > end-n {
			return nil, errors.New("wire: an RTX packet with more padding than payload")
		}
		end -= int(p[end-1])
	}
	if end-n < 2 {
		return nil, errors.New("wire: an RTX packet without an original sequence number")
	}
	osn := binary.BigEndian.Uint16(p[n:])
	// The header moves two bytes on, over the original sequence number.
	copy(p[2:n+2], p[:n])
	out := p[2:end]
	out[0] &^= 0x20 // no padding
	out[1] = out[1]&0x80 | pt&0x7f
	binary.BigEndian.PutUint16(out[2:], osn)
	binary.BigEndian.PutUint32(out[8:], ssrc)
	h.Padding, h.PaddingSize = false, 0
	h.PayloadType, h.SequenceNumber, h.SSRC = pt, osn, ssrc
	return out, nil
}

// headerLen is the length of RTP packet p's header as it is on the
// wire: the fixed part, the CSRCs and the extension block.
func headerLen(p []byte) (int, bool) {
	if len(p) < 12 {
		return 0, false
	}
	n := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 {
		if len(p) < n+4 {
			return 0, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(p[n+2:]))
	}
	return n, n <= len(p)
}
