package media

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"time"
)

// Per-stream state of the node's RTCP (rtcpsched.go): what a received
// stream's reader notes for receiver reports and NACKs, and what a sent
// stream's writer notes for sender reports. Each is one lock and a few
// stores per packet; the reports themselves are built on the scheduler's
// ticks.
const (
	// recvWindow is how many sequence numbers a received stream
	// remembers, for NACKs: five seconds of a 100 packets/s video.
	recvWindow = 512
	// nackTries is how many times a lost packet is asked for. A
	// retransmission on the publisher's RTX stream is matched to what was
	// asked for (repaired); one that is not matched stops being asked for
	// after this many ticks.
	nackTries = 4
	// nackMaxPerTick bounds the sequence numbers one NACK names per
	// stream and tick.
	nackMaxPerTick = 64
)

// upStream is a stream received from a publisher.
type upStream struct {
	ssrc      uint32
	clockRate float64
	nack      bool // the publisher resends what it is asked for

	mu      sync.Mutex
	started bool
	highest uint16 // newest sequence number
	cycles  uint32 // sequence number wraps, shifted left 16
	base    uint32 // extended first sequence number
	recv    uint32 // packets received
	// At the last receiver report.
	expectedPrior, recvPrior uint32
	jitter                   float64 // in clock units
	lastTransit              uint32
	lsr                      uint32 // middle 32 bits of the last sender report's NTP time
	lsrAt                    int64  // when it arrived, ns since the epoch; 0 for none
	got                      [recvWindow / 64]uint64
	tries                    [recvWindow]uint8 // NACKs sent per missing sequence number
}

// onPacket notes a packet read at now (ns since the node's epoch).
func (u *upStream) onPacket(seq uint16, ts uint32, now int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	arrival := uint32(int64(float64(now) * u.clockRate / 1e9))
	transit := arrival - ts
	if !u.started {
		u.started, u.highest, u.base = true, seq, uint32(seq)
		u.expectedPrior = 0
		u.setGot(seq)
		u.recv++
		u.lastTransit = transit
		return
	}
	u.recv++
	d := int32(transit - u.lastTransit)
	u.lastTransit = transit
	u.jitter += (float64(abs32(d)) - u.jitter) / 16
	ahead := int16(seq - u.highest)
	switch {
	case ahead > 0:
		for s, n := u.highest+1, 0; s != seq && n < recvWindow; s, n = s+1, n+1 {
			u.clearGot(s)
		}
		if seq < u.highest {
			u.cycles += 1 << 16
		}
		u.highest = seq
		u.setGot(seq)
	case -int(ahead) < recvWindow:
		u.setGot(seq) // late, or resent on the media SSRC
	}
}

func abs32(d int32) int64 {
	if d < 0 {
		return -int64(d)
	}
	return int64(d)
}

func (u *upStream) setGot(seq uint16) {
	i := seq % recvWindow
	u.got[i/64] |= 1 << (i % 64)
}

func (u *upStream) clearGot(seq uint16) {
	i := seq % recvWindow
	u.got[i/64] &^= 1 << (i % 64)
	u.tries[i] = 0
}

func (u *upStream) hasGot(seq uint16) bool {
	i := seq % recvWindow
	return u.got[i/64]&(1<<(i%64)) != 0
}

// noteSenderReport keeps the publisher's last sender report, for the
// receiver reports that answer it.
func (u *upStream) noteSenderReport(lsr uint32, now int64) {
	u.mu.Lock()
	u.lsr, u.lsrAt = lsr, now
	u.mu.Unlock()
}

// appendReportBlock appends this stream's reception report block (RFC
// 3550 section 6.4.1) as of now, and starts the next interval. It reports
// false, appending nothing, before the first packet.
func (u *upStream) appendReportBlock(b []byte, now int64) ([]byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.started {
		return b, false
	}
	extHighest := u.cycles | uint32(u.highest)
	expected := extHighest - u.base + 1
	lost := int64(expected) - int64(u.recv)
	lost = max(-0x800000, min(0x7fffff, lost))
	expInterval := expected - u.expectedPrior
	recvInterval := u.recv - u.recvPrior
	u.expectedPrior, u.recvPrior = expected, u.recv
	var fraction uint8
	if lostInterval := int64(expInterval) - int64(recvInterval); expInterval != 0 && lostInterval > 0 {
		fraction = uint8(lostInterval << 8 / int64(expInterval))
	}
	var dlsr uint32
	if u.lsrAt != 0 {
		dlsr = uint32((now - u.lsrAt) * 65536 / int64(time.Second))
	}
	b = binary.BigEndian.AppendUint32(b, u.ssrc)
	b = append(b, fraction, byte(lost>>16), byte(lost>>8), byte(lost))
	b = binary.BigEndian.AppendUint32(b, extHighest)
	b = binary.BigEndian.AppendUint32(b, uint32(u.jitter))
	b = binary.BigEndian.AppendUint32(b, u.lsr)
	b = binary.BigEndian.AppendUint32(b, dlsr)
	return b, true
}

// appendMissing appends to seqs the sequence numbers to ask for again:
// missing between the oldest the window holds and the newest, asked for
// fewer than nackTries times, at most nackMaxPerTick.
func (u *upStream) appendMissing(seqs []uint16) []uint16 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.started || !u.nack {
		return seqs
	}
	// From the oldest the window holds, or the stream's first packet.
	oldest := min(uint32(recvWindow-1), u.cycles|uint32(u.highest)-u.base)
	n := 0
	for s := u.highest - uint16(oldest); s != u.highest && n < nackMaxPerTick; s++ {
		if u.hasGot(s) || u.tries[s%recvWindow] >= nackTries {
			continue
		}
		u.tries[s%recvWindow]++
		seqs = append(seqs, s)
		n++
	}
	return seqs
}

// pending reports whether seq was asked for and has not come.
func (u *upStream) pending(seq uint16) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.started && int16(u.highest-seq) > 0 && int(u.highest-seq) < recvWindow &&
		!u.hasGot(seq) && u.tries[seq%recvWindow] > 0
}

// repaired notes that seq came on the RTX stream.
func (u *upStream) repaired(seq uint16) {
	u.mu.Lock()
	u.setGot(seq)
	u.mu.Unlock()
}

// appendNack appends a generic NACK (RFC 4585 section 6.2.1) from sender
// for seqs, sorted, of media.
func appendNack(b []byte, sender, media uint32, seqs []uint16) []byte {
	start := len(b)
	b = append(b, 0x80|rtcpFmtNack, rtcpRTPFB, 0, 0)
	b = binary.BigEndian.AppendUint32(b, sender)
	b = binary.BigEndian.AppendUint32(b, media)
	for i := 0; i < len(seqs); {
		pid := seqs[i]
		var blp uint16
		j := i + 1
		for ; j < len(seqs) && seqs[j]-pid >= 1 && seqs[j]-pid <= 16; j++ {
			blp |= 1 << (seqs[j] - pid - 1)
		}
		b = binary.BigEndian.AppendUint16(b, pid)
		b = binary.BigEndian.AppendUint16(b, blp)
		i = j
	}
	return padRTCP(b, start)
}

// downStream is a stream sent to a subscriber.
type downStream struct {
	ssrc      uint32
	clockRate float64

	mu      sync.Mutex
	packets uint32
	octets  uint32
	newest  uint16 // newest sequence number written
	rtpTime uint32 // timestamp of the newest frame written
	rtpAt   int64  // when its first packet was written, ns since the epoch
}

// onPacket notes a packet written at now.
func (d *downStream) onPacket(seq uint16, ts uint32, payload int, now int64) {
	d.mu.Lock()
	if d.packets == 0 || int16(seq-d.newest) > 0 {
		d.newest = seq
		if d.packets == 0 || ts != d.rtpTime {
			d.rtpTime, d.rtpAt = ts, now
		}
	}
	d.packets++
	d.octets += uint32(payload)
	d.mu.Unlock()
}

// appendSenderReport appends a sender report (RFC 3550 section 6.4.1) for
// now, at wall-clock time wall: the RTP time the newest frame's timestamp
// has come to since it was written, so audio and video map to one clock.
// It reports false, appending nothing, before the first packet.
func (d *downStream) appendSenderReport(b []byte, now int64, wall time.Time) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.packets == 0 {
		return b, false
	}
	rtpTime := d.rtpTime + uint32(int64(float64(now-d.rtpAt)*d.clockRate/1e9))
	b = append(b, 0x80, rtcpSenderReport, 0, 6)
	b = binary.BigEndian.AppendUint32(b, d.ssrc)
	b = binary.BigEndian.AppendUint64(b, ntpTime(wall))
	b = binary.BigEndian.AppendUint32(b, rtpTime)
	b = binary.BigEndian.AppendUint32(b, d.packets)
	b = binary.BigEndian.AppendUint32(b, d.octets)
	return b, true
}

// ntpTime is t in NTP's format: seconds since 1900 and a 32-bit fraction.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2_208_988_800
	ns := t.UnixNano()
	secs := uint64(ns/1e9) + unixToNTP
	frac, _ := bits.Div64(uint64(ns%1e9), 0, 1e9)
	return secs<<32 | frac
}
