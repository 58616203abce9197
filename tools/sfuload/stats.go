package main

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// percentile returns the p-quantile (0 <= p <= 1) of sorted by the
// nearest-rank method, or 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)) + 0.999999) // ceil without float noise
	i = min(max(i, 1), len(sorted))
	return sorted[i-1]
}

// lossCounter counts one stream's packets as a subscriber sees them, by
// the sender's gap-free sequence. Expected packets are the span from the
// lowest to the highest sequence seen in each run: a run is the time a
// subscriber receives this stream (a simulcast layer) without the node
// switching it to another layer, so the pause of a layer switched away
// and back is not counted as loss, nor are packets lost at the very edges
// of a run or of the window.
type lossCounter struct {
	lo, hi   uint32
	running  bool  // lo and hi describe the current run
	ended    int64 // packets the runs before the current one spanned
	received int64
}

func (l *lossCounter) add(seq uint32) {
	if !l.running || seq < l.lo {
		l.lo = seq
	}
	if !l.running || seq > l.hi {
		l.hi = seq
	}
	l.running = true
	l.received++
}

// endRun closes the current run: the node switched the subscriber to
// another layer.
func (l *lossCounter) endRun() {
	if l.running {
		l.ended += int64(l.hi-l.lo) + 1
		l.running = false
	}
}

// expected is the number of packets the spans of the runs cover.
func (l *lossCounter) expected() int64 {
	if !l.running {
		return l.ended
	}
	return l.ended + int64(l.hi-l.lo) + 1
}

// lost is expected minus received, never negative (duplicates, such as
// retransmissions, would otherwise hide losses as negative counts).
func (l *lossCounter) lost() int64 {
	return max(l.expected()-l.received, 0)
}

// window is the measured span in the run's monotonic nanoseconds: only
// packets sent inside it count, so warm-up traffic and packets still in
// flight when the run ends stay out of the figures.
type window struct {
	from, to atomic.Int64 // 0, 0 until measuring starts
}

func (w *window) contains(ns int64) bool {
	from := w.from.Load()
	return from != 0 && ns >= from && ns < w.to.Load()
}

type streamKey struct {
	publisher uint16
	stream    uint8
}

// recvStats is what one subscriber measured. Its track readers share it;
// the lock is only ever contended by the few tracks of one subscriber.
type recvStats struct {
	mu         sync.Mutex
	packets    int64
	bytes      int64
	latencies  []time.Duration
	streams    map[streamKey]*lossCounter
	firstFrame map[uint16]time.Duration // publisher -> first keyframe, since the run's base
	layer      map[uint16]uint8         // publisher -> video layer of the last packet in the window
	switches   int64                    // layer changes seen in the window
}

func newRecvStats() *recvStats {
	return &recvStats{streams: map[streamKey]*lossCounter{}, firstFrame: map[uint16]time.Duration{}, layer: map[uint16]uint8{}}
}

// record accounts one received packet of size bytes (the whole RTP
// packet) with stamp s, received at now (since the run's base).
func (r *recvStats) record(w *window, s stamp, key bool, size int, now time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if key && s.Stream != streamAudio {
		if _, ok := r.firstFrame[s.Publisher]; !ok {
			r.firstFrame[s.Publisher] = now
		}
	}
	if !w.contains(s.SentNanos) {
		return
	}
	r.packets++
	r.bytes += int64(size)
	r.latencies = append(r.latencies, now-time.Duration(s.SentNanos))
	if s.Stream != streamAudio {
		if prev, ok := r.layer[s.Publisher]; ok && prev != s.Stream {
			// A layer switch: the run of the layer left ends; its pause
			// until the node switches back is not loss.
			if left := r.streams[streamKey{s.Publisher, prev}]; left != nil {
				left.endRun()
			}
			r.switches++
		}
		r.layer[s.Publisher] = s.Stream
	}
	k := streamKey{s.Publisher, s.Stream}
	l := r.streams[k]
	if l == nil {
		l = &lossCounter{}
		r.streams[k] = l
	}
	l.add(s.Seq)
}

// totals is the sum of many subscribers' figures.
type totals struct {
	packets, bytes, expected, lost, switches int64
	latencies                                []time.Duration
}

func (t *totals) add(r *recvStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.packets += r.packets
	t.switches += r.switches
	t.bytes += r.bytes
	t.latencies = append(t.latencies, r.latencies...)
	for _, l := range r.streams {
		t.expected += l.expected()
		t.lost += l.lost()
	}
}

func (t *totals) sortLatencies() { slices.Sort(t.latencies) }

// lossPercent is lost over expected packets, in percent.
func (t *totals) lossPercent() float64 {
	if t.expected == 0 {
		return 0
	}
	return 100 * float64(t.lost) / float64(t.expected)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
