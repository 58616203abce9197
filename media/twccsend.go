package media

import (
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// Transport-wide feedback toward publishers
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1):
// browsers size their uplink from it. A publisher's connection notes the
// arrival of every packet that carries the transport-wide sequence number
// extension, whatever its stream; the node's RTCP scheduler (rtcpsched.go)
// turns what arrived since its last tick into feedback packets.
const (
	// twccRing is how many transport-wide sequence numbers a connection
	// remembers: at the scheduler's 100 ms ticks, 10,000 packets a second.
	twccRing = 1 << 10
	// twccMaxDeltaBytes bounds one feedback packet's arrival deltas, so
	// that it fits one datagram with the node's other reports.
	twccMaxDeltaBytes = 800
	// twccRefUnit is the unit of the reference time.
	twccRefUnit = 64 * time.Millisecond
)

// twccRecorder is one connection's record of arrivals, indexed by the
// unwrapped transport-wide sequence number. Streams of the connection
// record from their own reader goroutines; the scheduler builds feedback.
type twccRecorder struct {
	mu        sync.Mutex
	started   bool
	highest   int64 // unwrapped sequence number of the newest packet
	next      int64 // first sequence number not yet reported
	end       int64 // one past the highest recorded
	mediaSSRC uint32
	count     uint8           // feedback packet count
	arrivals  [twccRing]int64 // arrival in ns since the epoch, plus one; 0: not received
	syms      [twccRing]uint8 // the feedback being built (scheduler only)
	deltas    []byte          // its arrival deltas (scheduler only)
}

// record notes that packet seq of stream ssrc arrived at, in ns since
// the node's epoch.
func (r *twccRecorder) record(seq uint16, ssrc uint32, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		r.started = true
		r.highest = int64(seq)
		r.next, r.end = r.highest, r.highest
	}
	ext := r.highest + int64(int16(seq-uint16(r.highest)))
	r.mediaSSRC = ssrc
	switch {
	case ext >= r.end:
		for s := max(r.end, ext-twccRing+1); s < ext; s++ {
			r.arrivals[s%twccRing] = 0
		}
		r.end, r.highest = ext+1, ext
		r.next = max(r.next, r.end-twccRing)
	case ext < r.end-twccRing:
		return // too old to report
	case r.arrivals[ext%twccRing] != 0:
		return // a duplicate: the first arrival counts
	}
	r.arrivals[ext%twccRing] = at + 1
	// A packet that arrives after the feedback that reported it missing
	// is reported again, with what followed it.
	r.next = min(r.next, ext)
}

// appendFeedback appends feedback packets, from sender, for everything
// recorded since the last call to b. It reports nothing while no packet of
// the range has arrived.
func (r *twccRecorder) appendFeedback(b []byte, sender uint32) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.next < r.end {
		first := int64(-1)
		for s := r.next; s < r.end; s++ {
			if r.arrivals[s%twccRing] != 0 {
				first = s
				break
			}
		}
		if first < 0 {
			return b
		}
		var n int
		b, n = r.appendOne(b, sender, first)
		r.next += int64(n)
	}
	return b
}

// appendOne appends one feedback packet that starts at r.next and whose
// first received packet is first; it returns how many statuses it holds.
func (r *twccRecorder) appendOne(b []byte, sender uint32, first int64) ([]byte, int) {
	firstAt := r.arrivals[first%twccRing] - 1
	ref := firstAt / int64(twccRefUnit)
	last := ref * int64(twccRefUnit) / 1000 // µs, as the deltas count
	r.deltas = r.deltas[:0]
	n := 0
	for s := r.next; s < r.end && n < math.MaxUint16; s++ {
		at := r.arrivals[s%twccRing]
		if at == 0 {
			r.syms[n] = twccNotReceived
			n++
			continue
		}
		us := (at - 1) / 1000
		d := (us - last + twccDeltaUnitUsec/2) / twccDeltaUnitUsec
		if us < last {
			d = (us - last - twccDeltaUnitUsec/2) / twccDeltaUnitUsec
		}
		small := d >= 0 && d <= 0xff
		size := 2
		if small {
			size = 1
		}
		if d < math.MinInt16 || d > math.MaxInt16 || len(r.deltas)+size > twccMaxDeltaBytes {
			break // the rest goes in the next packet
		}
		if small {
			r.syms[n] = twccSmallDelta
			r.deltas = append(r.deltas, byte(d))
		} else {
			r.syms[n] = twccLargeDelta
			r.deltas = binary.BigEndian.AppendUint16(r.deltas, uint16(int16(d)))
		}
		last += d * twccDeltaUnitUsec
		n++
	}
	start := len(b)
	b = append(b, 0x80|twccFormat, twccTypeFeedback, 0, 0)
	b = binary.BigEndian.AppendUint32(b, sender)
	b = binary.BigEndian.AppendUint32(b, r.mediaSSRC)
	b = binary.BigEndian.AppendUint16(b, uint16(r.next))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, byte(ref>>16), byte(ref>>8), byte(ref), r.count)
	r.count++
	b = appendChunks(b, r.syms[:n])
	b = append(b, r.deltas...)
	return padRTCP(b, start), n
}

// appendChunks appends packet status chunks for syms: a run-length chunk
// for a run of 14 or more, else a status vector chunk of 14 one-bit
// symbols, or 7 two-bit ones when a large delta is among them.
func appendChunks(b []byte, syms []uint8) []byte {
	for i := 0; i < len(syms); {
		run := 1
		for i+run < len(syms) && syms[i+run] == syms[i] && run < 0x1fff {
			run++
		}
		if run >= 14 {
			b = binary.BigEndian.AppendUint16(b, uint16(syms[i])<<13|uint16(run))
			i += run
			continue
		}
		oneBit := true
		for _, s := range syms[i:min(i+14, len(syms))] {
			oneBit = oneBit && s != twccLargeDelta
		}
		c := uint16(0x8000)
		if oneBit {
			for j := range 14 {
				if i+j < len(syms) {
					c |= uint16(syms[i+j]) << (13 - j)
				}
			}
			i += 14
		} else {
			c |= 0x4000
			for j := range 7 {
				if i+j < len(syms) {
					c |= uint16(syms[i+j]) << (2 * (6 - j))
				}
			}
			i += 7
		}
		b = binary.BigEndian.AppendUint16(b, c)
	}
	return b
}

// padRTCP pads the RTCP packet that starts at b[start] to a multiple of
// four bytes (RFC 3550 section 6.4.1: the padding bit, and the count in
// the last byte) and sets its length.
func padRTCP(b []byte, start int) []byte {
	if pad := (4 - (len(b)-start)%4) % 4; pad > 0 {
		b = append(b, make([]byte, pad)...)
		b[len(b)-1] = byte(pad)
		b[start] |= 0x20
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16((len(b)-start)/4-1))
	return b
}
