package media

import (
	"testing"

	"github.com/pion/rtcp"
)

// twccSeeds are feedback packets with each kind of chunk, as pion writes
// them.
func twccSeeds(t testing.TB) [][]byte {
	fbs := []*rtcp.TransportLayerCC{
		{BaseSequenceNumber: 65530, PacketStatusCount: 3, ReferenceTime: 0x123456,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 3}},
			RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 0}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 63750}}},
		{BaseSequenceNumber: 7, PacketStatusCount: 14,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit,
				SymbolList: []uint16{1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}},
			RecvDeltas: []*rtcp.RecvDelta{{Type: 1, Delta: 1000}, {Type: 1, Delta: 2000}, {Type: 1, Delta: 3000}, {Type: 1, Delta: 4000}}},
		{BaseSequenceNumber: 100, PacketStatusCount: 9,
			PacketChunks: []rtcp.PacketStatusChunk{
				&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: []uint16{2, 0, 1, 2, 0, 0, 1}},
				&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 2}},
			RecvDeltas: []*rtcp.RecvDelta{{Type: 2, Delta: -8000}, {Type: 1, Delta: 250}, {Type: 2, Delta: 100000}, {Type: 1, Delta: 500}}},
	}
	var out [][]byte
	for _, fb := range fbs {
		out = append(out, marshalTWCC(t, fb))
	}
	return out
}

// marshalTWCC writes fb with its RTCP header, which pion leaves to the
// caller.
func marshalTWCC(t testing.TB, fb *rtcp.TransportLayerCC) []byte {
	t.Helper()
	fb.Header = rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback, Length: uint16(fb.MarshalSize()/4 - 1)}
	b, err := fb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type twccStatus struct {
	sym   uint16
	delta int64
}

// FuzzParseTWCC: the in-place reader never panics, and reads whatever
// pion's rtcp package reads as transport-wide feedback the same way.
func FuzzParseTWCC(f *testing.F) {
	for _, b := range twccSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []twccStatus
		complete := false
		var fb twccFeedback
		pt, format, pkt, _, ok := nextRTCP(b)
		if ok && pt == twccTypeFeedback && format == twccFormat {
			if fb, ok = parseTWCC(pkt); ok {
				complete = fb.walk(func(sym uint16, d int64) { got = append(got, twccStatus{sym, d}) })
			}
		}
		var want rtcp.TransportLayerCC
		if err := want.Unmarshal(b); err != nil {
			return
		}
		if !complete {
			t.Fatalf("pion reads %x, the node does not", b)
		}
		if fb.base != want.BaseSequenceNumber || fb.count != want.PacketStatusCount || fb.refTime != want.ReferenceTime {
			t.Fatalf("header %d %d %d, pion %d %d %d", fb.base, fb.count, fb.refTime, want.BaseSequenceNumber, want.PacketStatusCount, want.ReferenceTime)
		}
		var deltas []int64
		for _, s := range got {
			if s.sym == twccSmallDelta || s.sym == twccLargeDelta {
				deltas = append(deltas, s.delta)
			}
		}
		if len(deltas) != len(want.RecvDeltas) {
			t.Fatalf("%d deltas, pion %d", len(deltas), len(want.RecvDeltas))
		}
		for i, d := range want.RecvDeltas {
			if deltas[i] != d.Delta {
				t.Fatalf("delta %d is %d µs, pion %d", i, deltas[i], d.Delta)
			}
		}
		if len(got) != int(want.PacketStatusCount) {
			t.Fatalf("%d statuses, want %d", len(got), want.PacketStatusCount)
		}
	})
}

// TestParseTWCCSeeds checks the seeds' statuses one by one.
func TestParseTWCCSeeds(t *testing.T) {
	want := [][]twccStatus{
		{{1, 250}, {1, 0}, {1, 63750}},
		{{1, 1000}, {0, 0}, {1, 2000}, {1, 3000}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {1, 4000}},
		{{2, -8000}, {0, 0}, {1, 250}, {2, 100000}, {0, 0}, {0, 0}, {1, 500}, {0, 0}, {0, 0}},
	}
	for i, b := range twccSeeds(t) {
		_, _, pkt, rest, ok := nextRTCP(b)
		if !ok || len(rest) != 0 {
			t.Fatalf("seed %d: not one RTCP packet", i)
		}
		fb, ok := parseTWCC(pkt)
		if !ok {
			t.Fatalf("seed %d not read", i)
		}
		var got []twccStatus
		if !fb.walk(func(sym uint16, d int64) { got = append(got, twccStatus{sym, d}) }) {
			t.Fatalf("seed %d: deltas ran out", i)
		}
		if len(got) != len(want[i]) {
			t.Fatalf("seed %d: %v, want %v", i, got, want[i])
		}
		for j := range got {
			if got[j] != want[i][j] {
				t.Fatalf("seed %d: %v, want %v", i, got, want[i])
			}
		}
	}
}

// TestWantsAnswer: the RTCP reader parses a compound packet only when it
// carries a NACK, a PLI or a FIR, wherever in the compound.
func TestWantsAnswer(t *testing.T) {
	marshal := func(pkts ...rtcp.Packet) []byte {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}
	twcc := twccSeeds(t)[0]
	for _, c := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"receiver report", marshal(rr), false},
		{"transport-wide feedback", twcc, false},
		{"report and feedback", append(marshal(rr), twcc...), false},
		{"NACK after a report", marshal(rr, &rtcp.TransportLayerNack{MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 5}}}), true},
		{"PLI", marshal(&rtcp.PictureLossIndication{MediaSSRC: 2}), true},
		{"FIR after feedback", append(append([]byte(nil), twcc...), marshal(&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 2}}})...), true},
		{"REMB", marshal(&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e6, SSRCs: []uint32{2}}), false},
		{"garbage", []byte{1, 2, 3, 4, 5}, true},
	} {
		if got := wantsAnswer(c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
