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
// Its bytes are read into a buffer of maxPacket, then, when they fit a
// smaller one, moved into it (setLen): the packets subscribers' NACK logs
// hold for a second are most of the node's heap, and a 300 kbit/s layer's
// are some 600 bytes, audio's about a hundred.
type packet struct {
	buf  []byte // maxPacket long while read into, then the size class of n
	pool *packetPool
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

// Size classes of packet buffers below maxPacket: audio, and the
// allocator's classes for a low layer's packets and a middle one's.
const (
	smallBuf  = 256
	mediumBuf = 640
	largeBuf  = 1024
)

// packetPool is per SFU (no package state), handed to every reader: the
// packets, and their buffers by size class.
type packetPool struct {
	p                          sync.Pool // *packet
	small, medium, large, full sync.Pool // *[smallBuf]byte ... *[maxPacket]byte
}

func newPacketPool() *packetPool {
	pp := &packetPool{}
	pp.p.New = func() any { return &packet{pool: pp} }
	pp.small.New = func() any { return new([smallBuf]byte) }
	pp.medium.New = func() any { return new([mediumBuf]byte) }
	pp.large.New = func() any { return new([largeBuf]byte) }
	pp.full.New = func() any { return new([maxPacket]byte) }
	return pp
}

// get returns a packet with a buffer of maxPacket to read into.
func (pp *packetPool) get() *packet {
	p := pp.p.Get().(*packet)
	p.buf = pp.full.Get().(*[maxPacket]byte)[:]
	p.refs.Store(1)
	return p
}

// copyOf returns a packet holding a copy of b, a packet received whole
// (at most maxPacket bytes), in a buffer of its size class: one copy,
// where get and setLen would make two.
func (pp *packetPool) copyOf(b []byte) *packet {
	p := pp.p.Get().(*packet)
	b = b[:min(len(b), maxPacket)]
	p.buf = pp.bufFor(len(b))
	p.n = uint16(copy(p.buf, b))
	p.refs.Store(1)
	return p
}

func (pp *packetPool) release(p *packet) {
	if p.refs.Add(-1) == 0 {
		pp.putBuf(p.buf)
		p.buf = nil
		pp.p.Put(p)
	}
}

// bufFor returns a buffer of the smallest class that holds n bytes.
func (pp *packetPool) bufFor(n int) []byte {
	switch {
	case n <= smallBuf:
		return pp.small.Get().(*[smallBuf]byte)[:]
	case n <= mediumBuf:
		return pp.medium.Get().(*[mediumBuf]byte)[:]
	case n <= largeBuf:
		return pp.large.Get().(*[largeBuf]byte)[:]
	}
	return pp.full.Get().(*[maxPacket]byte)[:]
}

func (pp *packetPool) putBuf(b []byte) {
	switch len(b) {
	case smallBuf:
		pp.small.Put((*[smallBuf]byte)(b))
	case mediumBuf:
		pp.medium.Put((*[mediumBuf]byte)(b))
	case largeBuf:
		pp.large.Put((*[largeBuf]byte)(b))
	case maxPacket:
		pp.full.Put((*[maxPacket]byte)(b))
	}
}

func (p *packet) payload() []byte { return p.buf[p.hdrLen : p.n-uint16(p.padLen)] }

// setLen sets the packet's length, n bytes read into buf, and moves them
// into a buffer of their size class when it is smaller.
func (p *packet) setLen(n int) {
	n = min(n, maxPacket)
	p.n = uint16(n)
	if n > largeBuf || p.pool == nil {
		return
	}
	b := p.pool.bufFor(n)
	copy(b, p.buf[:n])
	p.pool.putBuf(p.buf)
	p.buf = b
}

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
