package media

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// rtcpSink is a connection's RTCP writer: what the node writes, read back
// with pion's parser, one slice per write.
type rtcpSink struct {
	t      *testing.T
	delay  atomic.Int64 // how long each write takes, ns
	mu     sync.Mutex
	writes [][]rtcp.Packet
	at     map[rtcp.Packet]time.Time // when each packet was written
}

func (s *rtcpSink) Write(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
	time.Sleep(time.Duration(s.delay.Load()))
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		s.t.Errorf("marshal: %v", err)
		return 0, err
	}
	if len(raw) > rtcpMTU {
		s.t.Errorf("%d bytes in one write", len(raw))
	}
	parsed, err := rtcp.Unmarshal(raw)
	if err != nil {
		s.t.Errorf("pion cannot read %x: %v", raw, err)
	}
	s.mu.Lock()
	s.writes = append(s.writes, parsed)
	for _, p := range parsed {
		s.at[p] = time.Now()
	}
	s.mu.Unlock()
	return len(raw), nil
}

// take returns the packets written since the last call.
func (s *rtcpSink) take() []rtcp.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []rtcp.Packet
	for _, w := range s.writes {
		all = append(all, w...)
	}
	s.writes = nil
	return all
}

// rtcpHarness is one connection's RTCP interceptor under a scheduler,
// with the header cache below it as in the node's chain.
type rtcpHarness struct {
	t     *testing.T
	sched *rtcpScheduler
	conn  *rtcpConn
	sink  *rtcpSink
	stop  chan struct{}
	done  chan struct{}
	in    []byte
	buf   []byte
	tseq  uint16
}

const twccTestID = 5

func newRTCPHarness(t *testing.T) *rtcpHarness {
	h := &rtcpHarness{t: t, sched: newRTCPScheduler(time.Now()), sink: &rtcpSink{t: t, at: map[rtcp.Packet]time.Time{}},
		stop: make(chan struct{}), done: make(chan struct{}), buf: make([]byte, 1500)}
	ic, err := h.sched.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	h.conn = ic.(*rtcpConn)
	h.conn.BindRTCPWriter(h.sink)
	go func() {
		h.sched.run(h.stop)
		close(h.done)
	}()
	// Halfway between ticks: what the test does next comes before the
	// next tick, never at the same instant.
	time.Sleep(rtcpTick / 2)
	return h
}

// lose counts a packet lost on the way: its transport-wide sequence
// number is never read.
func (h *rtcpHarness) lose() { h.tseq++ }

func (h *rtcpHarness) close() {
	h.conn.Close()
	close(h.stop)
	<-h.done
}

// remote binds a received stream and returns a function that reads one
// packet of it through the chain.
func (h *rtcpHarness) remote(info *interceptor.StreamInfo) func(seq uint16, ts uint32, payload []byte) {
	info.RTPHeaderExtensions = []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: twccTestID}}
	hcs, err := newHeaderCaches()
	if err != nil {
		h.t.Fatal(err)
	}
	hc, _ := hcs.NewInterceptor("")
	src := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, h.in), a, nil
	})
	r := h.conn.BindRemoteStream(info, hc.BindRemoteStream(info, src))
	return func(seq uint16, ts uint32, payload []byte) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, SSRC: info.SSRC}, Payload: payload}
		if err := p.SetExtension(twccTestID, []byte{byte(h.tseq >> 8), byte(h.tseq)}); err != nil {
			h.t.Fatal(err)
		}
		h.tseq++
		var err error
		if h.in, err = p.Marshal(); err != nil {
			h.t.Fatal(err)
		}
		if _, _, err := r.Read(h.buf, nil); err != nil {
			h.t.Fatal(err)
		}
	}
}

var (
	videoInfo = interceptor.StreamInfo{SSRC: 1000, ClockRate: 90000, MimeType: "video/VP8",
		RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}
	rtxInfo = interceptor.StreamInfo{SSRC: 2000, ClockRate: 90000, MimeType: "video/rtx"}
)

// nacked is every sequence number the NACKs among pkts ask for.
func nacked(t *testing.T, pkts []rtcp.Packet, sender uint32) []uint16 {
	var seqs []uint16
	for _, p := range pkts {
		if n, ok := p.(*rtcp.TransportLayerNack); ok {
			if n.MediaSSRC != videoInfo.SSRC || n.SenderSSRC != sender {
				t.Errorf("NACK for %d from %d", n.MediaSSRC, n.SenderSSRC)
			}
			for _, pair := range n.Nacks {
				seqs = append(seqs, pair.PacketList()...)
			}
		}
	}
	return seqs
}

// TestNodeNacksWhatItLost: what the node lost on a publisher's uplink is
// asked for on the next tick, and again on later ones until it comes,
// either on the media stream or on the RTX stream, and at most nackTries
// times.
func TestNodeNacksWhatItLost(t *testing.T) {
	tests := []struct {
		name     string
		lost     []uint16
		resend   []uint16 // on the media SSRC after the first NACK
		repair   []uint16 // on the RTX stream after the first NACK
		wantThen []uint16 // asked for on each later tick, while tries last
	}{
		{"nothing lost", nil, nil, nil, nil},
		{"never resent", []uint16{104, 105}, nil, nil, []uint16{104, 105}},
		{"resent on the media stream", []uint16{104, 105}, []uint16{104}, nil, []uint16{105}},
		{"repaired on the RTX stream", []uint16{104, 105, 120}, nil, []uint16{105, 120}, []uint16{104}},
		{"a long burst", []uint16{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118}, nil, nil,
			[]uint16{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newRTCPHarness(t)
				defer h.close()
				video := h.remote(&videoInfo)
				rtx := h.remote(&rtxInfo)
				for s := uint16(100); s < 125; s++ {
					if slices.Contains(tt.lost, s) {
						h.lose()
					} else {
						video(s, uint32(s)*3000, make([]byte, 100))
					}
				}
				time.Sleep(rtcpTick)
				if got := nacked(t, h.sink.take(), h.conn.sender); !slices.Equal(got, tt.lost) {
					t.Fatalf("first NACKs ask for %v, want %v", got, tt.lost)
				}
				for _, s := range tt.resend {
					video(s, uint32(s)*3000, make([]byte, 100))
				}
				for i, s := range tt.repair {
					rtx(uint16(500+i), uint32(s)*3000, []byte{byte(s >> 8), byte(s), 1, 2, 3})
				}
				for try := 2; try <= nackTries+2; try++ {
					time.Sleep(rtcpTick)
					want := tt.wantThen
					if try > nackTries {
						want = nil
					}
					if got := nacked(t, h.sink.take(), h.conn.sender); !slices.Equal(got, want) {
						t.Fatalf("NACK %d asks for %v, want %v", try, got, want)
					}
				}
			})
		})
	}
}

// TestNodeReportsToPublisherAndSubscriber: on report ticks a publisher
// gets a receiver report that answers its last sender report and counts
// what was lost, and transport-wide feedback for every packet; a
// subscriber gets a sender report that maps the newest frame's timestamp
// to the wall clock at the stream's rate, with what was sent.
func TestNodeReportsToPublisherAndSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRTCPHarness(t)
		defer h.close()
		video := h.remote(&videoInfo)
		for i := range 16 { // across the wrap
			s := uint16(65530 + i)
			if s == 65535 || s == 3 {
				h.lose()
			} else {
				video(s, uint32(i)*450, make([]byte, 100))
			}
			time.Sleep(5 * time.Millisecond)
		}
		sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: videoInfo.SSRC, NTPTime: 0x1122334455667788}})
		readRTCP := h.conn.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(b, sr), a, nil
		}))
		if _, _, err := readRTCP.Read(h.buf, nil); err != nil {
			t.Fatal(err)
		}
		srAt := time.Now()

		var sent []*rtp.Header
		w := h.conn.BindLocalStream(&interceptor.StreamInfo{SSRC: 3000, ClockRate: 90000},
			interceptor.RTPWriterFunc(func(hd *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
				sent = append(sent, hd)
				return 0, nil
			}))
		for i := range 6 {
			hd := &rtp.Header{Version: 2, SSRC: 3000, SequenceNumber: uint16(7 + i), Timestamp: uint32(9000 + i/2*3000)}
			if _, err := w.Write(hd, make([]byte, 200), nil); err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 {
				time.Sleep(33 * time.Millisecond)
			}
		}
		lastFrameAt := time.Now().Add(-33 * time.Millisecond)

		var pkts []rtcp.Packet
		for range rtcpReportsAt {
			time.Sleep(rtcpTick)
			pkts = append(pkts, h.sink.take()...)
		}
		var rr *rtcp.ReceiverReport
		var subSR *rtcp.SenderReport
		got, lost := map[uint16]time.Duration{}, map[uint16]bool{}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.ReceiverReport:
				rr = p
			case *rtcp.SenderReport:
				subSR = p
			case *rtcp.TransportLayerCC:
				readFeedback(t, p, got, lost)
			}
		}
		if rr == nil || len(rr.Reports) != 1 || subSR == nil {
			t.Fatalf("no receiver report with one block or no sender report in %v", pkts)
		}
		reportAt := h.sink.at[rr]
		r := rr.Reports[0]
		wantDelay := uint32(reportAt.Sub(srAt) * 65536 / time.Second)
		if r.SSRC != videoInfo.SSRC || r.LastSequenceNumber != 1<<16|9 || r.TotalLost != 2 || r.FractionLost != 2*256/16 || r.Jitter > 1 ||
			r.LastSenderReport != 0x33445566 || r.Delay != wantDelay {
			t.Errorf("reception report %+v; want 2 lost of 16, highest 65536+9, no jitter, LSR 0x33445566 and delay %d", r, wantDelay)
		}
		if len(got) != 14 || len(lost) != 2 {
			t.Errorf("feedback: %d received, %d lost; want 14 and 2", len(got), len(lost))
		}
		wantRTP := uint32(9000+2*3000) + uint32(reportAt.Sub(lastFrameAt).Seconds()*90000)
		if subSR.SSRC != 3000 || subSR.PacketCount != 6 || subSR.OctetCount != 1200 || subSR.NTPTime != ntpTime(reportAt) ||
			subSR.RTPTime != wantRTP {
			t.Errorf("sender report %+v; want 6 packets, 1200 octets, NTP %x, RTP time %d", subSR, ntpTime(reportAt), wantRTP)
		}
	})
}

// TestClosedConnectionIsLetGo: once a connection closes, the scheduler
// writes nothing more for it and holds no reference to it, and a stream
// unbound is no longer reported.
func TestClosedConnectionIsLetGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRTCPHarness(t)
		defer h.close()
		video := h.remote(&videoInfo)
		video(1, 0, nil)
		video(3, 0, nil)
		time.Sleep(rtcpTick)
		if len(h.sink.take()) == 0 {
			t.Fatal("nothing written for a live connection")
		}
		h.conn.UnbindRemoteStream(&videoInfo)
		time.Sleep(rtcpReportsAt * rtcpTick)
		for _, p := range h.sink.take() {
			if _, ok := p.(*rtcp.TransportLayerCC); !ok {
				t.Errorf("%T written for an unbound stream", p)
			}
		}
		h.conn.Close()
		h.sched.mu.Lock()
		n := len(h.sched.conns)
		h.sched.mu.Unlock()
		video(4, 0, nil)
		time.Sleep(rtcpReportsAt * rtcpTick)
		if got := h.sink.take(); len(got) != 0 || n != 0 {
			t.Errorf("%d packets written and %d connections held after Close", len(got), n)
		}
	})
}

// TestSlowConnectionDoesNotHoldUpOthers: a connection whose write took
// long is written on a goroutine of its own from then on, so while its
// writes block, the others' RTCP goes out on every tick.
func TestSlowConnectionDoesNotHoldUpOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := newRTCPHarness(t)
		defer slow.close()
		ic, err := slow.sched.NewInterceptor("")
		if err != nil {
			t.Fatal(err)
		}
		fast := &rtcpHarness{t: t, conn: ic.(*rtcpConn), sink: &rtcpSink{t: t, at: map[rtcp.Packet]time.Time{}}, buf: make([]byte, 1500)}
		fast.conn.BindRTCPWriter(fast.sink)
		defer fast.conn.Close()
		slowVideo, fastVideo := slow.remote(&videoInfo), fast.remote(&videoInfo)
		slow.sink.delay.Store(int64(2 * rtcpSlowWrite))
		for i := range 12 {
			slowVideo(uint16(i), 0, nil)
			fastVideo(uint16(i), 0, nil)
			time.Sleep(rtcpTick)
			if i == 0 {
				if !slow.conn.slow.Load() {
					t.Fatal("a write of twice rtcpSlowWrite did not mark the connection slow")
				}
				slow.sink.delay.Store(int64(time.Second)) // now it blocks
				fast.sink.take()
			}
		}
		if n := len(fast.sink.take()); n < 11 {
			t.Errorf("%d packets for the other connection in 11 ticks", n)
		}
	})
}

// FuzzForEachSenderReport: the in-place reader of publishers' RTCP never
// panics, and finds in a compound pion reads the sender reports pion
// finds.
func FuzzForEachSenderReport(f *testing.F) {
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.SenderReport{SSRC: 5, NTPTime: 42,
		Reports: []rtcp.ReceptionReport{{SSRC: 9}}}})
	f.Add(sr)
	for _, b := range twccSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		type found struct{ ssrc, lsr uint32 }
		var got []found
		forEachSenderReport(b, func(ssrc, lsr uint32) { got = append(got, found{ssrc, lsr}) })
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		var want []found
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				want = append(want, found{sr.SSRC, uint32(sr.NTPTime >> 16)})
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("found %v in %x, pion %v", got, b, want)
		}
	})
}
