package media

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Bounds and steps of the lean estimator, in bits per second and per
// second of feedback.
const (
	minEstimate    = 50_000
	maxEstimate    = 20_000_000
	increasePerSec = 0.08 // multiplicative, while nothing is lost or queued
	overuseQueue   = 40 * time.Millisecond
	// sendLogSize is how many transport-wide sequence numbers are
	// remembered, a power of two so the log wraps with them. Feedback
	// comes every 50 to 100 ms and one round trip after the packets it
	// reports: 600 ms covers it with room for a slow path. At the
	// estimate's ceiling, 20 Mbit/s in 1,200-byte packets, that is 1,250
	// packets; the log holds 2,048, at 8 bytes each 16 KiB per subscriber.
	sendLogSize = 1 << 11
)

// leanBWEs makes one leanBWE per peer connection, handed to Join by the
// connection's id.
type leanBWEs struct{ byConn *sync.Map }

func (f leanBWEs) NewInterceptor(id string) (interceptor.Interceptor, error) {
	e := newLeanBWE(initialEstimate, time.Now())
	f.byConn.Store(id, e)
	return e, nil
}

// leanBWE is the congestion controller toward a subscriber. On the way
// out it numbers every packet with the transport-wide sequence number
// extension and notes when it left and its size: an array store, no
// allocation. Once per transport-wide feedback report (every 50 to 100
// ms) it updates the estimate the layer allocator reads, from three
// signals: the share of packets lost, the queue building up on the path
// (one-way delay above the lowest seen), and the rate that arrived:
//
//   - more than 10 % of the last 100 reported packets lost: down by half
//     the loss, once per 100 packets;
//   - a queue over 40 ms: down to 85 % of the rate that arrived;
//   - under 2 % lost and under half that queue: up 8 % a second, to at
//     most 1.5 times the rate that arrived (or where it already was).
//
// Publishers get the node's TWCC feedback (twccsend.go), which their own
// estimators, browsers', read.
type leanBWE struct {
	interceptor.NoOp
	epoch   time.Time
	seq     atomic.Uint32 // next transport-wide sequence number
	target  atomic.Int64
	reports atomic.Int64 // feedback reports read

	mu       sync.Mutex
	sent     [sendLogSize]sendRecord
	minOWD   int64 // lowest arrival minus send time seen, ns; clocks differ, so only its changes mean anything
	minAt    int64 // when it was last lowered or aged
	lastFeed int64
	rate     float64 // arrived bits per second, smoothed over reports
	// Loss is judged over lossWindow packets, not per report: a report
	// covers a few packets, and one of five late is not 20 % loss.
	accTotal, accLost int
	loss              float64 // of the last full window
}

// lossWindow is how many reported packets the loss share is taken over.
const lossWindow = 100

// sendRecord is one packet sent: 8 bytes. Its send time is kept in
// microseconds since the estimator's epoch, modulo 2^32 (71 minutes), and
// read back against the time the feedback is read, which is later by far
// less than that.
type sendRecord struct {
	atUsec uint32
	size   uint16 // bytes; 0 for a slot never written
	seq    uint16
}

// sentAt is when r was sent, in ns since the epoch, read at now (ns since
// the epoch, not before r was sent).
func (r sendRecord) sentAt(now int64) int64 {
	nowUsec := now / 1e3
	return (nowUsec - int64(uint32(nowUsec)-r.atUsec)) * 1e3
}

func newLeanBWE(initial int, now time.Time) *leanBWE {
	e := &leanBWE{epoch: now, minOWD: math.MaxInt64}
	e.target.Store(int64(initial))
	return e
}

// GetTargetBitrate is what the layer allocator reads.
func (e *leanBWE) GetTargetBitrate() int { return int(e.target.Load()) }

func (e *leanBWE) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var id uint8
	for _, x := range info.RTPHeaderExtensions {
		if x.URI == sdp.TransportCCURI {
			id = uint8(x.ID)
		}
	}
	if id == 0 {
		return w
	}
	var mu sync.Mutex // the extension's bytes live until the write returns
	var ext [2]byte
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		seq := uint16(e.seq.Add(1) - 1)
		mu.Lock()
		defer mu.Unlock()
		binary.BigEndian.PutUint16(ext[:], seq)
		if err := h.SetExtension(id, ext[:]); err != nil {
			return 0, err
		}
		e.noteSent(seq, int64(time.Since(e.epoch)), h.MarshalSize()+len(payload))
		return w.Write(h, payload, a)
	})
}

func (e *leanBWE) noteSent(seq uint16, at int64, size int) {
	e.mu.Lock()
	e.sent[seq%sendLogSize] = sendRecord{atUsec: uint32(at / 1e3), size: uint16(max(1, min(size, math.MaxUint16))), seq: seq}
	e.mu.Unlock()
}

// BindRTCPReader reads the transport-wide feedback in what the subscriber
// sends, in place: no attributes map, no parsed packets.
func (e *leanBWE) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		for rest := b[:n]; len(rest) > 0; {
			pt, format, pkt, next, ok := nextRTCP(rest)
			if !ok {
				break // not ours to refuse; the reader above reports it
			}
			if pt == twccTypeFeedback && format == twccFormat {
				if fb, ok := parseTWCC(pkt); ok {
					e.onFeedback(fb, int64(time.Since(e.epoch)))
				}
			}
			rest = next
		}
		return n, a, nil
	})
}

// feedbackSums is what one report says about the packets it covers.
type feedbackSums struct {
	total, lost  int
	bytes        int
	firstSend    int64
	lastSend     int64
	firstArr     int64
	lastArr      int64
	lastOWD      int64
	haveArrivals bool
}

// onFeedback updates the estimate from one report, at now.
func (e *leanBWE) onFeedback(fb twccFeedback, now int64) {
	e.reports.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sum(fb, now)
	if s.total == 0 {
		return
	}
	dt := float64(now-e.lastFeed) / 1e9
	if e.lastFeed == 0 || dt > 0.5 {
		dt = 0.5
	}
	e.lastFeed = now
	if s.haveArrivals {
		// The lowest one-way delay ages by 1 ms a second, so a route
		// that got longer for good stops counting as a queue.
		if s.lastOWD < e.minOWD {
			e.minOWD, e.minAt = s.lastOWD, now
		} else if now-e.minAt > int64(time.Second) {
			e.minOWD += int64(time.Millisecond)
			e.minAt = now
		}
	}
	span := s.lastArr - s.firstArr
	if s.haveArrivals && span >= int64(20*time.Millisecond) {
		r := float64(s.bytes) * 8 / (float64(span) / 1e9)
		if e.rate == 0 {
			e.rate = r
		}
		e.rate += (r - e.rate) / 5
	}
	queue := time.Duration(s.lastOWD - e.minOWD)
	e.accTotal += s.total
	e.accLost += s.lost
	judged := e.accTotal >= lossWindow
	if judged {
		e.loss = float64(e.accLost) / float64(e.accTotal)
		e.accTotal, e.accLost = 0, 0
	}
	loss := e.loss
	target := float64(e.target.Load())
	switch {
	case loss > 0.10:
		if judged {
			target *= 1 - loss/2
		}
	case s.haveArrivals && queue > overuseQueue:
		if e.rate > 0 {
			target = min(target, 0.85*e.rate)
		} else {
			target *= 0.85
		}
	case loss < 0.02 && queue < overuseQueue/2:
		target *= 1 + increasePerSec*dt
		if e.rate > 0 {
			// Like GCC, never far above what actually arrives: the
			// allocator reads the estimate against what it sends.
			target = min(target, max(float64(e.target.Load()), 1.5*e.rate))
		}
	}
	e.target.Store(int64(max(minEstimate, min(maxEstimate, target))))
}

// sum walks the report's statuses and arrival deltas, read at now.
func (e *leanBWE) sum(fb twccFeedback, now int64) feedbackSums {
	var s feedbackSums
	arrival := int64(fb.refTime) * 64 * int64(time.Millisecond)
	seq := fb.base
	fb.walk(func(sym uint16, deltaUsec int64) {
		rec := e.sent[seq%sendLogSize]
		known := rec.size != 0 && rec.seq == seq
		seq++
		received := sym == twccSmallDelta || sym == twccLargeDelta
		if received {
			arrival += deltaUsec * int64(time.Microsecond)
		}
		if !known {
			return
		}
		s.total++
		if sym == twccNotReceived {
			s.lost++
			return
		}
		if !received {
			return // received, without its time
		}
		at := rec.sentAt(now)
		if !s.haveArrivals {
			s.haveArrivals, s.firstSend, s.firstArr = true, at, arrival
		}
		s.lastSend, s.lastArr, s.lastOWD = at, arrival, arrival-at
		s.bytes += int(rec.size)
	})
	return s
}
