package media

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// The node's own RTCP, in place of pion's NACK generator, sender and
// receiver report and TWCC feedback interceptors: each of those runs a
// ticker goroutine per peer connection, and pion's TWCC feedback hands
// every received packet to its goroutine over a channel. Here each
// connection's interceptor (rtcpConn) keeps per-stream state only, noted
// by the readers and writers pion already runs, and one goroutine of the
// node (rtcpScheduler.run) writes, on its ticks, for every connection:
//
//   - every tick (100 ms): NACKs to publishers for what the node lost on
//     the uplink, and transport-wide feedback (twccsend.go);
//   - every second: receiver reports to publishers, answering their
//     sender reports (last SR and the delay since, for their round-trip
//     time), and sender reports to subscribers (rtcpstreams.go).
//
// A connection's reports of one tick go out in one compound packet where
// they fit (rtcpMTU). A write the transport does not take at once (a
// stalled ICE-TCP connection) would hold up the others': a connection
// whose write took longer than rtcpSlowWrite is written from then on by a
// goroutine of its own per tick, skipped while the last one still runs.
const (
	rtcpTick      = 100 * time.Millisecond
	rtcpReportsAt = 10 // ticks between reports: one second
	rtcpMTU       = 1200
	rtcpSlowWrite = 20 * time.Millisecond
)

// rtcpScheduler is the node's RTCP goroutine and the connections it
// writes for.
type rtcpScheduler struct {
	epoch time.Time

	mu    sync.Mutex
	conns map[*rtcpConn]struct{}
	wg    sync.WaitGroup // detached writes
}

func newRTCPScheduler(epoch time.Time) *rtcpScheduler {
	return &rtcpScheduler{epoch: epoch, conns: map[*rtcpConn]struct{}{}}
}

// NewInterceptor makes a connection's RTCP interceptor; the connection is
// written for from its RTCP writer's binding until it closes.
func (s *rtcpScheduler) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpConn{sched: s, sender: rand.Uint32(), ups: map[uint32]*upStream{}, rtx: map[uint32]bool{},
		downs: map[uint32]*downStream{}}, nil
}

// run writes every connection's RTCP each tick until stop is closed, and
// waits for the writes it detached.
func (s *rtcpScheduler) run(stop <-chan struct{}) {
	t := time.NewTicker(rtcpTick)
	defer t.Stop()
	defer s.wg.Wait()
	var conns []*rtcpConn
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		conns = conns[:0]
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		reports := n%rtcpReportsAt == 0
		for i, c := range conns {
			s.flush(c, reports)
			conns[i] = nil
		}
	}
}

// flush writes c's RTCP for this tick, on the scheduler's goroutine or,
// for a slow connection, on one of its own.
func (s *rtcpScheduler) flush(c *rtcpConn, reports bool) {
	if !c.slow.Load() {
		c.flush(int64(time.Since(s.epoch)), time.Now(), reports)
		return
	}
	if !c.busy.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer c.busy.Store(false)
		c.flush(int64(time.Since(s.epoch)), time.Now(), reports)
	}()
}

func (s *rtcpScheduler) add(c *rtcpConn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *rtcpScheduler) remove(c *rtcpConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// rawRTCP is RTCP already written out, handed to pion's RTCP writer.
type rawRTCP []byte

func (r rawRTCP) Marshal() ([]byte, error)  { return r, nil }
func (r *rawRTCP) Unmarshal(b []byte) error { *r = append((*r)[:0], b...); return nil }
func (r rawRTCP) DestinationSSRC() []uint32 { return nil }
func (r rawRTCP) MarshalSize() int          { return len(r) }

var _ rtcp.Packet = (*rawRTCP)(nil)

// rtcpConn is one peer connection's RTCP interceptor.
type rtcpConn struct {
	interceptor.NoOp
	sched  *rtcpScheduler
	sender uint32 // the SSRC the node's reports come from

	w          interceptor.RTCPWriter // set once, before the scheduler sees c
	slow, busy atomic.Bool

	mu    sync.Mutex
	ups   map[uint32]*upStream   // received streams, by SSRC
	rtx   map[uint32]bool        // received RTX streams
	downs map[uint32]*downStream // sent streams, by SSRC

	twcc twccRecorder

	// The scheduler's (or the connection's detached write's) buffers.
	out   []byte
	pkts  [1]rtcp.Packet
	raw   rawRTCP
	seqs  []uint16
	upl   []*upStream
	downl []*downStream
}

func (c *rtcpConn) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.w = w
	c.sched.add(c)
	return w
}

func (c *rtcpConn) Close() error {
	c.sched.remove(c)
	return nil
}

func (c *rtcpConn) now() int64 { return int64(time.Since(c.sched.epoch)) }

// BindRemoteStream notes every packet of a publisher's stream: its
// transport-wide sequence number, and its sequence number and timestamp
// for receiver reports and NACKs, from the header the cache below parsed.
func (c *rtcpConn) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	twccID := extensionID(info, sdp.TransportCCURI)
	isRTX := strings.EqualFold(info.MimeType, webrtc.MimeTypeRTX)
	u := &upStream{ssrc: info.SSRC, clockRate: float64(info.ClockRate), nack: hasNack(info)}
	c.mu.Lock()
	if isRTX {
		c.rtx[info.SSRC] = true
	} else {
		c.ups[info.SSRC] = u
	}
	c.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		h, err := a.GetRTPHeader(b[:n]) // parsed below, by the header cache
		if err != nil {
			return n, a, nil // not ours to refuse
		}
		now := c.now()
		if twccID != 0 {
			if ext := h.GetExtension(twccID); len(ext) >= 2 {
				c.twcc.record(binary.BigEndian.Uint16(ext), h.SSRC, now)
			}
		}
		if isRTX {
			if off := h.MarshalSize(); n-off-int(paddingOf(b[:n], h.Padding)) >= 2 {
				c.repaired(binary.BigEndian.Uint16(b[off:]))
			}
			return n, a, nil
		}
		u.onPacket(h.SequenceNumber, h.Timestamp, now)
		return n, a, nil
	})
}

// paddingOf is the padding length of RTP packet b, whose header says
// whether it has any.
func paddingOf(b []byte, padded bool) uint8 {
	if !padded || len(b) == 0 {
		return 0
	}
	return b[len(b)-1]
}

// repaired marks seq received on the one stream that asked for it; if
// more than one did, it was a coincidence of sequence numbers, and each
// is asked again within its tries.
func (c *rtcpConn) repaired(seq uint16) {
	c.mu.Lock()
	var hit *upStream
	for _, u := range c.ups {
		if u.nack && u.pending(seq) {
			if hit != nil {
				c.mu.Unlock()
				return
			}
			hit = u
		}
	}
	c.mu.Unlock()
	if hit != nil {
		hit.repaired(seq)
	}
}

func (c *rtcpConn) UnbindRemoteStream(info *interceptor.StreamInfo) {
	c.mu.Lock()
	delete(c.ups, info.SSRC)
	delete(c.rtx, info.SSRC)
	c.mu.Unlock()
}

// BindLocalStream notes every packet written to a subscriber, as it
// leaves, for sender reports.
func (c *rtcpConn) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	d := &downStream{ssrc: info.SSRC, clockRate: float64(info.ClockRate)}
	c.mu.Lock()
	c.downs[info.SSRC] = d
	c.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		n, err := w.Write(h, payload, a)
		if err == nil && h.SSRC == info.SSRC {
			d.onPacket(h.SequenceNumber, h.Timestamp, len(payload), c.now())
		}
		return n, err
	})
}

func (c *rtcpConn) UnbindLocalStream(info *interceptor.StreamInfo) {
	c.mu.Lock()
	delete(c.downs, info.SSRC)
	c.mu.Unlock()
}

// BindRTCPReader notes publishers' sender reports, read in place.
func (c *rtcpConn) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		forEachSenderReport(b[:n], func(ssrc, lsr uint32) {
			c.mu.Lock()
			u := c.ups[ssrc]
			c.mu.Unlock()
			if u != nil {
				u.noteSenderReport(lsr, c.now())
			}
		})
		return n, a, nil
	})
}

// forEachSenderReport calls fn with the SSRC and the middle 32 bits of the
// NTP time of each sender report in compound RTCP packet b, up to the
// first malformed packet.
func forEachSenderReport(b []byte, fn func(ssrc, lsr uint32)) {
	for len(b) > 0 {
		pt, _, pkt, rest, ok := nextRTCP(b)
		if !ok {
			return
		}
		if pt == rtcpSenderReport && len(pkt) >= 28 {
			fn(binary.BigEndian.Uint32(pkt[4:]), binary.BigEndian.Uint32(pkt[10:]))
		}
		b = rest
	}
}

// extensionID is the id info's stream negotiated for header extension
// uri, 0 for none.
func extensionID(info *interceptor.StreamInfo, uri string) uint8 {
	for _, x := range info.RTPHeaderExtensions {
		if x.URI == uri {
			return uint8(x.ID)
		}
	}
	return 0
}

// hasNack reports whether the stream's sender resends what it is asked
// for (a=rtcp-fb nack).
func hasNack(info *interceptor.StreamInfo) bool {
	for _, f := range info.RTCPFeedback {
		if f.Type == "nack" && f.Parameter == "" {
			return true
		}
	}
	return false
}

// flush writes what c has to report at now (ns since the epoch; wall is
// the same instant on the wall clock): on report ticks the sender and
// receiver reports, then NACKs and transport-wide feedback, packed into
// as few datagrams of at most rtcpMTU as they fit.
func (c *rtcpConn) flush(now int64, wall time.Time, reports bool) {
	c.mu.Lock()
	c.upl, c.downl = c.upl[:0], c.downl[:0]
	for _, u := range c.ups {
		c.upl = append(c.upl, u)
	}
	for _, d := range c.downs {
		c.downl = append(c.downl, d)
	}
	c.mu.Unlock()
	b := c.out[:0]
	if reports {
		for _, d := range c.downl {
			b, _ = d.appendSenderReport(b, now, wall)
		}
		b = c.appendReceiverReports(b, now)
	}
	for _, u := range c.upl {
		if c.seqs = u.appendMissing(c.seqs[:0]); len(c.seqs) > 0 {
			b = appendNack(b, c.sender, u.ssrc, c.seqs)
		}
	}
	b = c.twcc.appendFeedback(b, c.sender)
	c.out = b
	clear(c.upl)
	clear(c.downl)
	c.write(b)
}

// appendReceiverReports appends receiver reports with a block for every
// received stream that has had a packet, 31 blocks at most to a report.
func (c *rtcpConn) appendReceiverReports(b []byte, now int64) []byte {
	start, count := -1, 0
	end := func() {
		b[start] = 0x80 | byte(count)
		binary.BigEndian.PutUint16(b[start+2:], uint16((len(b)-start)/4-1))
		start, count = -1, 0
	}
	for _, u := range c.upl {
		if start < 0 {
			start = len(b)
			b = append(b, 0x80, rtcpReceiverReport, 0, 0)
			b = binary.BigEndian.AppendUint32(b, c.sender)
		}
		var ok bool
		if b, ok = u.appendReportBlock(b, now); ok {
			count++
		}
		if count == 31 {
			end()
		}
	}
	switch {
	case start >= 0 && count == 0:
		b = b[:start]
	case start >= 0:
		end()
	}
	return b
}

// write hands the RTCP packets in b to the connection, as many to a
// datagram as fit in rtcpMTU.
func (c *rtcpConn) write(b []byte) {
	for len(b) > 0 {
		n := 0
		for rest := b; len(rest) > 0; {
			_, _, pkt, next, ok := nextRTCP(rest)
			if !ok || (n > 0 && n+len(pkt) > rtcpMTU) {
				break
			}
			n += len(pkt)
			rest = next
		}
		if n == 0 {
			return // cannot happen: the node wrote b
		}
		c.raw = rawRTCP(b[:n])
		c.pkts[0] = &c.raw
		start := time.Now()
		_, _ = c.w.Write(c.pkts[:], nil) // fails until the transport is up, and once it is closed
		if time.Since(start) > rtcpSlowWrite {
			c.slow.Store(true) // from the next tick on, written on a goroutine of its own
		}
		b = b[n:]
	}
}
