package media

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

type arrival struct {
	seq uint16
	at  time.Duration // since the epoch
}

// TestTWCCFeedbackAsPionReadsIt: the feedback built from what arrived
// reads, with pion's parser, as each packet's status and an arrival time
// within half a delta unit of the true one, from every packet of the
// range, with the feedback count going up by one per packet.
func TestTWCCFeedbackAsPionReadsIt(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		arrivals []arrival
		packets  int // feedback packets expected
	}{
		{"in order", []arrival{{10, 100 * ms}, {11, 101 * ms}, {12, 103 * ms}}, 1},
		{"losses", []arrival{{10, 100 * ms}, {13, 104 * ms}, {14, 104 * ms}, {20, 110 * ms}}, 1},
		{"a gap larger than a small delta", []arrival{{1, 100 * ms}, {2, 180 * ms}, {3, 181 * ms}}, 1},
		{"arrival times out of order", []arrival{{1, 100 * ms}, {2, 90 * ms}, {3, 101 * ms}}, 1},
		{"a long run", runOf(500, 40, 200*ms, 2*ms), 1},
		{"sequence numbers wrap", []arrival{{65534, 100 * ms}, {65535, 101 * ms}, {1, 103 * ms}}, 1},
		{"a delta too large for one packet", []arrival{{5, 100 * ms}, {6, 10 * time.Second}}, 2},
		{"many large deltas", spaced(0, 1000, 100*ms, 70*ms), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r twccRecorder
			for _, a := range tt.arrivals {
				r.record(a.seq, 42, int64(a.at))
			}
			b := r.appendFeedback(nil, 7)
			pkts, err := rtcp.Unmarshal(b)
			if err != nil {
				t.Fatalf("pion reads %x: %v", b, err)
			}
			if len(pkts) != tt.packets {
				t.Fatalf("%d feedback packets, want %d", len(pkts), tt.packets)
			}
			got := map[uint16]time.Duration{}
			lost := map[uint16]bool{}
			next := tt.arrivals[0].seq
			for i, p := range pkts {
				fb, ok := p.(*rtcp.TransportLayerCC)
				if !ok {
					t.Fatalf("packet %d is %T", i, p)
				}
				if fb.FbPktCount != uint8(i) || fb.SenderSSRC != 7 || fb.MediaSSRC != 42 {
					t.Fatalf("packet %d: count %d, SSRCs %d %d", i, fb.FbPktCount, fb.SenderSSRC, fb.MediaSSRC)
				}
				if fb.BaseSequenceNumber != next {
					t.Fatalf("packet %d starts at %d, want %d", i, fb.BaseSequenceNumber, next)
				}
				readFeedback(t, fb, got, lost)
				next = fb.BaseSequenceNumber + fb.PacketStatusCount
			}
			for _, a := range tt.arrivals {
				at, ok := got[a.seq]
				if !ok {
					t.Fatalf("%d not reported received", a.seq)
				}
				if d := at - a.at; d > 125*time.Microsecond || d < -125*time.Microsecond {
					t.Errorf("%d arrived at %v, reported %v", a.seq, a.at, at)
				}
			}
			if n := len(got) + len(lost); n != int(next-tt.arrivals[0].seq) {
				t.Errorf("%d statuses, want one for each of %d..%d", n, tt.arrivals[0].seq, next-1)
			}
			if b := r.appendFeedback(nil, 7); len(b) != 0 {
				t.Errorf("%d bytes reported again with nothing new", len(b))
			}
		})
	}
}

// readFeedback adds fb's received packets with their arrival times to got
// and its missing ones to lost.
func readFeedback(t *testing.T, fb *rtcp.TransportLayerCC, got map[uint16]time.Duration, lost map[uint16]bool) {
	t.Helper()
	at := time.Duration(fb.ReferenceTime) * twccRefUnit
	seq := fb.BaseSequenceNumber
	deltas := fb.RecvDeltas
	left := int(fb.PacketStatusCount)
	note := func(sym uint16) {
		if left == 0 {
			return
		}
		left--
		if sym == rtcp.TypeTCCPacketNotReceived {
			lost[seq] = true
		} else {
			if len(deltas) == 0 {
				t.Fatalf("no delta for %d", seq)
			}
			at += time.Duration(deltas[0].Delta) * time.Microsecond
			deltas = deltas[1:]
			got[seq] = at
		}
		seq++
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range c.RunLength {
				note(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				note(s)
			}
		}
	}
	if left != 0 || len(deltas) != 0 {
		t.Fatalf("%d statuses and %d deltas left over", left, len(deltas))
	}
}

func runOf(first uint16, n int, start, step time.Duration) []arrival {
	var as []arrival
	for i := range n {
		as = append(as, arrival{first + uint16(i), start + time.Duration(i)*step})
	}
	return as
}

// spaced is n packets, every other one lost, step apart.
func spaced(first uint16, n int, start, step time.Duration) []arrival {
	var as []arrival
	for i := 0; i < n; i += 2 {
		as = append(as, arrival{first + uint16(i), start + time.Duration(i)*step})
	}
	return as
}

// TestTWCCLateArrivalReportedAgain: a packet reported missing that then
// arrives is reported again, received, in the next feedback.
func TestTWCCLateArrivalReportedAgain(t *testing.T) {
	var r twccRecorder
	r.record(1, 1, int64(100*time.Millisecond))
	r.record(3, 1, int64(102*time.Millisecond))
	if _, err := rtcp.Unmarshal(r.appendFeedback(nil, 7)); err != nil {
		t.Fatal(err)
	}
	r.record(2, 1, int64(150*time.Millisecond))
	pkts, err := rtcp.Unmarshal(r.appendFeedback(nil, 7))
	if err != nil || len(pkts) != 1 {
		t.Fatalf("%d packets, %v", len(pkts), err)
	}
	got, lost := map[uint16]time.Duration{}, map[uint16]bool{}
	readFeedback(t, pkts[0].(*rtcp.TransportLayerCC), got, lost)
	if _, ok := got[2]; !ok || len(lost) != 0 {
		t.Fatalf("received %v, lost %v; want 2 received", got, lost)
	}
}

// TestTWCCFeedbackReadsBackInPlace: the node's own reader of feedback
// (twcc.go) reads what the node writes.
func TestTWCCFeedbackReadsBackInPlace(t *testing.T) {
	var r twccRecorder
	for _, a := range []arrival{{10, 100 * time.Millisecond}, {12, 101 * time.Millisecond}, {13, 400 * time.Millisecond}} {
		r.record(a.seq, 1, int64(a.at))
	}
	b := r.appendFeedback(nil, 7)
	pt, format, pkt, _, ok := nextRTCP(b)
	if !ok || pt != twccTypeFeedback || format != twccFormat {
		t.Fatalf("not feedback: %x", b)
	}
	fb, ok := parseTWCC(pkt)
	if !ok || fb.base != 10 || fb.count != 4 {
		t.Fatalf("%+v %v", fb, ok)
	}
	var syms []uint16
	fb.walk(func(sym uint16, _ int64) { syms = append(syms, sym) })
	want := []uint16{twccSmallDelta, twccNotReceived, twccSmallDelta, twccLargeDelta}
	if len(syms) != len(want) {
		t.Fatalf("statuses %v, want %v", syms, want)
	}
	for i := range want {
		if syms[i] != want[i] {
			t.Fatalf("statuses %v, want %v", syms, want)
		}
	}
}
