package media

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// maxPacket is the largest RTP packet the SFU forwards: pion reads up to
// 1,500 bytes (its receive MTU), one Ethernet frame; browsers send at
// most 1,200.
const maxPacket = 1500

// packet is one received RTP packet shared read-only by every subscriber
// queue it is put on. The reader that received it holds one reference and
// each queue one more; the last release returns it to the pool, so the
// forwarding path allocates nothing once the pool is warm.
//
// Its fields are laid out to keep it within 1,536 bytes, the allocator's
// size class above 1,500; with ints for the lengths it took 1,792. The
// packets subscribers' NACK logs hold are most of the node's heap.
type packet struct {
	buf  [maxPacket]byte
	refs atomic.Int32
	n    uint16

	// Parsed once by the reader, so that writers never touch buf.
	hdrLen   uint16 // RTP header length including CSRCs and extensions
	padLen   uint8  // trailing padding bytes
	marker   bool
	keyframe bool // first packet of a keyframe
	layer    int8 // simulcast layer, 0 for a track without simulcast
	seq      uint16
	ts       uint32
	arrival  int64 // monotonic nanoseconds since the SFU started
}

// packetPool is per SFU (no package state), handed to every reader.
type packetPool struct{ p sync.Pool }

func newPacketPool() *packetPool {
	pp := &packetPool{}
	pp.p.New = func() any { return new(packet) }
	return pp
}

func (pp *packetPool) get() *packet {
	p := pp.p.Get().(*packet)
	p.refs.Store(1)
	return p
}

func (pp *packetPool) release(p *packet) {
	if p.refs.Add(-1) == 0 {
		pp.p.Put(p)
	}
}

func (p *packet) payload() []byte { return p.buf[p.hdrLen : p.n-uint16(p.padLen)] }

// setLen sets the packet's length, n bytes read into buf.
func (p *packet) setLen(n int) { p.n = uint16(min(n, maxPacket)) }

// parse reads the fixed RTP header fields the SFU needs without building an
// rtp.Packet, which would allocate for extensions and CSRCs. It reports
// false for anything that is not a well-formed RTP packet.
func (p *packet) parse() bool {
	b := p.buf[:p.n]
	if len(b) < 12 || b[0]>>6 != 2 {
		return false
	}
	hl := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // extension
		if len(b) < hl+4 {
			return false
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(b[hl+2:]))
	}
	if hl > len(b) {
		return false
	}
	pad := 0
	if b[0]&0x20 != 0 {
		pad = int(b[len(b)-1])
		if pad == 0 || hl+pad > len(b) {
			return false
		}
	}
	p.hdrLen, p.padLen = uint16(hl), uint8(pad)
	p.marker = b[1]&0x80 != 0
	p.seq = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	return true
}

// extension returns the payload of header extension id, or nil. Both the
// one-byte (RFC 8285 0xBEDE) and two-byte forms are understood.
func (p *packet) extension(id uint8) []byte {
	b := p.buf[:p.n]
	if id == 0 || b[0]&0x10 == 0 {
		return nil
	}
	start := 12 + 4*int(b[0]&0x0f)
	profile := binary.BigEndian.Uint16(b[start:])
	ext := b[start+4 : p.hdrLen]
	for i := 0; i < len(ext); {
		switch {
		case profile == 0xBEDE:
			if ext[i] == 0 { // padding
				i++
				continue
			}
			eid, l := ext[i]>>4, int(ext[i]&0x0f)+1
			if eid == 15 || i+1+l > len(ext) {
				return nil
			}
			if eid == id {
				return ext[i+1 : i+1+l]
			}
			i += 1 + l
		case profile&0xfff0 == 0x1000:
			if ext[i] == 0 {
				i++
				continue
			}
			if i+2 > len(ext) {
				return nil
			}
			eid, l := ext[i], int(ext[i+1])
			if i+2+l > len(ext) {
				return nil
			}
			if eid == id {
				return ext[i+2 : i+2+l]
			}
			i += 2 + l
		default:
			return nil
		}
	}
	return nil
}
