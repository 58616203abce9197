package media

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// sentHistory is how many of the packets last sent to a subscriber on a
// video track can be sent again when it reports them lost, and sentMaxAge
// how long: whichever comes first. 256 packets are one second of a
// 2.5 Mbit/s layer; one second is several round trips, as long as a
// browser keeps what it sent for retransmission (libwebrtc's packet
// history keeps at least a second, and three round trips). Without the
// age bound a 300 kbit/s layer's log held seven seconds of packets, most
// of the node's heap.
const (
	sentHistory = 256
	sentMaxAge  = int64(time.Second)
)

// sentLog answers a subscriber's NACKs. It keeps no copy of what was sent:
// each entry holds one more reference to the publisher's packet, the
// buffer every subscriber of the layer shares, and what this subscriber's
// rewriting made of it (sequence number, timestamp, VP8 picture ID
// offsets). The publication's packets thus form one reference-counted
// cache per track, and a subscriber costs only its entries.
//
// The writer goroutine adds; the connection's RTCP reader (streams.go)
// looks up. A retransmission
// goes to the subscriber that asked and to nobody else.
type sentLog struct {
	mu      sync.Mutex
	e       [sentHistory]sentEntry
	started bool
	oldest  uint16 // outgoing sequence number of the oldest entry that may be held
}

type sentEntry struct {
	p      *packet // nil when empty
	seq    uint16  // outgoing
	ts     uint32  // outgoing
	vp8    bool    // payload rewritten with the offsets below
	picOff uint16
	tl0Off uint8
}

// add records that p went out as e; the log takes its own reference.
func (l *sentLog) add(pool *packetPool, p *packet, e sentEntry) {
	p.refs.Add(1)
	e.p = p
	l.mu.Lock()
	defer l.mu.Unlock()
	slot := &l.e[e.seq%sentHistory]
	if slot.p != nil {
		pool.release(slot.p)
	}
	*slot = e
	l.expire(pool, e.seq, p.arrival)
}

// expire releases the entries sent sentMaxAge before the packet sent as
// newest, which arrived at now; the caller holds mu.
func (l *sentLog) expire(pool *packetPool, newest uint16, now int64) {
	if d := int(int16(newest - l.oldest)); !l.started || d >= sentHistory {
		l.started = true
		l.oldest = newest - sentHistory + 1 // older slots were overwritten
	} else if d < 0 {
		return // a retransmitted or reordered sequence number
	}
	for l.oldest != newest {
		o := &l.e[l.oldest%sentHistory]
		if o.p != nil {
			// Within the window a slot holds oldest itself; anything else
			// is from before it, left by a gap in what was sent.
			if o.seq == l.oldest && now-o.p.arrival < sentMaxAge {
				return
			}
			pool.release(o.p)
			*o = sentEntry{}
		}
		l.oldest++
	}
}

// get returns the entry sent as seq with a reference the caller releases.
func (l *sentLog) get(seq uint16) (sentEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.e[seq%sentHistory]
	if e.p == nil || e.seq != seq {
		return sentEntry{}, false
	}
	e.p.refs.Add(1)
	return e, true
}

// clear releases every packet the log holds.
func (l *sentLog) clear(pool *packetPool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.e {
		if l.e[i].p != nil {
			pool.release(l.e[i].p)
			l.e[i] = sentEntry{}
		}
	}
}

// resender is the RTCP reader's state for retransmissions: one header
// and one payload buffer, reused.
type resender struct {
	hdr rtp.Header
	buf []byte
}

// answerNack resends what n asks for and the log still holds, with the
// sequence number and timestamp it first had: on the subscriber's RTX
// stream where negotiated, else on the track's own SSRC (where a receiver
// that did get the packet drops the copy as an SRTP replay);
// what the log no longer holds is not resent (the subscriber's decoder
// asks for a keyframe if it needs one).
func (d *downTrack) answerNack(n *rtcp.TransportLayerNack, rs *resender) {
	b := d.bound.Load()
	if d.sent == nil || b == nil {
		return
	}
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			e, ok := d.sent.get(seq)
			if !ok {
				return true
			}
			payload := e.p.payload()
			if e.vp8 {
				rs.buf = applyVP8Offsets(payload, rs.buf, e.picOff, e.tl0Off)
				payload = rs.buf
			}
			h := &rs.hdr
			h.Version = 2
			h.Marker = e.p.marker
			h.PayloadType = b.pt
			h.SequenceNumber = e.seq
			h.Timestamp = e.ts
			h.SSRC = b.ssrc
			h.Extension = false
			h.Extensions = h.Extensions[:0]
			if d.sub.rtx == nil || !d.sub.rtx.resend(h, payload) {
				_, _ = b.ws.WriteRTP(h, payload)
			}
			d.sfu.pool.release(e.p)
			return true
		})
	}
}

// applyVP8Offsets copies payload into out with a VP8 picture ID and
// TL0PICIDX shifted as vp8Rewriter shifted them when it was first sent.
func applyVP8Offsets(payload, out []byte, picOff uint16, tl0Off uint8) []byte {
	out = append(out[:0], payload...)
	d, ok := parseVP8(payload)
	if !ok {
		return out
	}
	if d.picAt != 0 {
		mask := uint16(0x7fff)
		if !d.wide {
			mask = 0x7f
		}
		d.setPic(out, (d.pic(payload)-picOff)&mask)
	}
	if d.tl0At != 0 {
		out[d.tl0At] = payload[d.tl0At] - tl0Off
	}
	return out
}
