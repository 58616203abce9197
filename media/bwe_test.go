package media

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// twccReport builds the feedback for n packets from seq on, each sent at
// sent(i) and, unless lost(i), arriving at arrived(i) by the receiver's
// clock (which runs 3 s off the sender's).
func twccReport(t *testing.T, seq uint16, n int, lost func(int) bool, arrived func(int) time.Duration) twccFeedback {
	t.Helper()
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: seq, PacketStatusCount: uint16(n)}
	ref := (arrived(0) + 3*time.Second) / (64 * time.Millisecond)
	fb.ReferenceTime = uint32(ref)
	prev := ref * 64 * time.Millisecond
	for i := range n {
		if lost(i) {
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 1})
			continue
		}
		at := arrived(i) + 3*time.Second
		sym := rtcp.TypeTCCPacketReceivedSmallDelta
		if d := at - prev; d < 0 || d >= 64*time.Millisecond {
			sym = rtcp.TypeTCCPacketReceivedLargeDelta
		}
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: sym, RunLength: 1})
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: sym, Delta: (at - prev).Microseconds()})
		prev = at
	}
	b := marshalTWCC(t, fb)
	f, ok := parseTWCC(b)
	if !ok {
		t.Fatalf("feedback %x not read", b)
	}
	return f
}

// TestLeanBWE feeds ten reports of 20 packets of 1,200 bytes sent 5 ms
// apart (about 1.9 Mbit/s) and checks where the estimate, from 2.5
// Mbit/s, ends.
func TestLeanBWE(t *testing.T) {
	const perReport, gap = 20, 5 * time.Millisecond
	tests := []struct {
		name     string
		lost     func(seq int) bool
		delay    func(seq int) time.Duration // one-way, by the packet's number
		unknown  bool                        // reports about packets never sent
		min, max int
	}{
		{"clean path: up, under 1.5 times what arrives", func(int) bool { return false }, func(int) time.Duration { return 10 * time.Millisecond },
			false, 2_600_000, 3_000_000},
		{"30 % lost: down", func(s int) bool { return s%10 < 3 }, func(int) time.Duration { return 10 * time.Millisecond },
			false, minEstimate, 2_000_000},
		{"queue building (arrivals 6 ms apart): down to what arrives", func(int) bool { return false }, func(s int) time.Duration { return time.Duration(s) * time.Millisecond },
			false, 1_000_000, 1_700_000},
		{"5 % lost: not lowered, and held once a window of it is seen", func(s int) bool { return s%20 == 0 }, func(int) time.Duration { return 10 * time.Millisecond },
			false, 2_500_000, 2_700_000},
		{"packets never sent: unchanged", func(int) bool { return true }, func(int) time.Duration { return 0 },
			true, 2_500_000, 2_500_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLeanBWE(2_500_000, time.Now())
			for k := range 10 {
				base := k * perReport
				for i := range perReport {
					if !tt.unknown {
						e.noteSent(uint16(base+i), int64(time.Duration(base+i)*gap), 1200)
					}
				}
				fb := twccReport(t, uint16(base), perReport, func(i int) bool { return tt.lost(base + i) },
					func(i int) time.Duration { return time.Duration(base+i)*gap + tt.delay(base+i) })
				e.onFeedback(fb, int64(time.Duration(base+perReport)*gap+50*time.Millisecond))
			}
			if got := e.GetTargetBitrate(); got < tt.min || got > tt.max {
				t.Errorf("estimate %d bit/s, want %d to %d", got, tt.min, tt.max)
			}
		})
	}
}

// TestSendLogCoversFlight sends packets at a steady rate and reads the
// feedback for the oldest of them: still matched, with its send time,
// while the log holds it.
func TestSendLogCoversFlight(t *testing.T) {
	const size = 1200
	gap := time.Duration(size*8) * time.Second / 20_000_000 // 20 Mbit/s
	inFlight := int(600 * time.Millisecond / gap)
	tests := []struct {
		name    string
		first   uint16
		start   time.Duration // of the first packet, since the epoch
		n       int           // packets sent
		matched bool
	}{
		{"600 ms at 20 Mbit/s", 0, 0, inFlight, true},
		{"a full log", 100, time.Second, sendLogSize, true},
		{"across the sequence numbers' wrap", 65_000, time.Second, inFlight, true},
		{"80 minutes in, past the microsecond clock's wrap", 7, 80 * time.Minute, inFlight, true},
		{"one more than the log holds: overwritten", 0, 0, sendLogSize + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLeanBWE(2_500_000, time.Now())
			for i := range tt.n {
				e.noteSent(tt.first+uint16(i), int64(tt.start+time.Duration(i)*gap), size)
			}
			const owd = 30 * time.Millisecond
			fb := twccReport(t, tt.first, 1, func(int) bool { return false }, func(int) time.Duration { return tt.start + owd })
			now := tt.start + time.Duration(tt.n)*gap + 2*owd
			s := e.sum(fb, int64(now))
			if got := s.total == 1; got != tt.matched {
				t.Fatalf("matched %v, want %v (%d packets sent, log of %d)", got, tt.matched, tt.n, sendLogSize)
			}
			if !tt.matched {
				return
			}
			// Arrivals are by the receiver's clock, 3 s off, in 250 µs steps.
			if d := time.Duration(s.lastOWD) - (owd + 3*time.Second); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("one-way delay %v, want %v", time.Duration(s.lastOWD), owd+3*time.Second)
			}
		})
	}
}
