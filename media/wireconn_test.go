package media

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media/sdpneg"
	"github.com/openconsult/openconsult/media/wire"
)

// newTestWireConn is a connection on a port of its own, with cfg's
// callbacks; connected closes once it is connected.
func newTestWireConn(t *testing.T, cfg wireConnConfig) (*wireConn, <-chan struct{}) {
	t.Helper()
	chain, _ := newTestChain(t, t.Name())
	port, sock, cert := newTestPort(t)
	connected := make(chan struct{})
	var once sync.Once
	cfg.Port, cfg.Certificate, cfg.Chain = port, cert, chain
	cfg.Candidates = []string{fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", sock.LocalAddr().(*net.UDPAddr).Port)}
	cfg.OnState = func(s wire.State) {
		if s == wire.StateConnected {
			once.Do(func() { close(connected) })
		}
	}
	w, err := newWireConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.close() })
	return w, connected
}

// TestWireConnPublishesAndSubscribes: a pion member publishing VP8 joins
// a connection on the node's own transport with its offer; the node's
// answer brings the transport up, the member's stream is found in its
// section with its codec and read up the chain; then the node offers a
// track of its own, the member answers, and the member receives it.
func TestWireConnPublishesAndSubscribes(t *testing.T) {
	var (
		mu       sync.Mutex
		streams  []inStream
		ended    []uint32
		nacked   = map[uint32]bool{} // the node's streams the member asked packets of
		received atomic.Int64
	)
	w, connected := newTestWireConn(t, wireConnConfig{
		OnStream: func(s inStream) func([]byte, interceptor.Attributes) {
			mu.Lock()
			streams = append(streams, s)
			mu.Unlock()
			return func([]byte, interceptor.Attributes) { received.Add(1) }
		},
		OnFeedback: func(ssrc uint32, pkt []byte) {
			if pkt[0]&0x1f == 1 && pkt[1] == 205 {
				mu.Lock()
				nacked[ssrc] = true
				mu.Unlock()
			}
		},
		OnStreamEnded: func(ssrc uint32) {
			mu.Lock()
			ended = append(ended, ssrc)
			mu.Unlock()
		},
	})

	p := newWirePeer(t)
	memberOffers(t, w, p, nil)
	waitConnected(t, connected)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	vp8 := []byte{0x10, 0, 0x9d, 0x01, 0x2a, 1, 2, 3}
	wg.Go(func() {
		everyTick(stop, func(seq uint16) {
			_ = p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: vp8})
		})
	})
	eventually.True(t, 10*time.Second, "the member's video read up the chain", func() bool { return received.Load() > 30 })
	mu.Lock()
	got := streams[0]
	n := len(streams)
	mu.Unlock()
	if n != 1 || got.Codec.Name != "VP8" || got.Section.Kind != sdpneg.Video || got.RTX || got.SSRC != uint32(p.sender.GetParameters().Encodings[0].SSRC) {
		t.Fatalf("%d streams, the first %+v", n, got)
	}

	track := sdpneg.Track{ID: "camera", StreamID: "other/cam", Kind: sdpneg.Video, SSRC: 5555, RTXSSRC: 5556, CNAME: "node"}
	if err := w.addTrack(track, ""); err != nil {
		t.Fatal(err)
	}
	renegotiate(t, w, p, func(offer string) {
		if !strings.Contains(offer, "msid:"+track.StreamID+" "+track.ID) {
			t.Fatalf("the node's offer does not carry its track:\n%s", offer)
		}
	})
	out, pt, err := w.bindTrack("camera")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		everyTick(stop, func(seq uint16) {
			if seq == 20 {
				return // lost: the member asks for it
			}
			h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: track.SSRC}
			_, _ = out.Write(&h, vp8, nil)
		})
	})
	eventually.True(t, 10*time.Second, "the node's track at the member", func() bool { return p.got.Load() > 30 })
	eventually.True(t, 10*time.Second, "the member's NACK for the node's track", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return nacked[track.SSRC]
	})
	if s, _ := p.stream.Load().(string); s != track.StreamID {
		t.Fatalf("the member got the node's track in stream %q, want %q", s, track.StreamID)
	}

	pubSSRC := uint32(p.sender.GetParameters().Encodings[0].SSRC)
	if err := w.requestKeyframe(pubSSRC); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the node's keyframe request at the member", func() bool { return p.count(&rtcp.PictureLossIndication{}) > 0 })

	// The node stops its track: its next offer no longer carries it.
	if err := w.removeTrack(track.ID, track.SSRC); err != nil {
		t.Fatal(err)
	}
	renegotiate(t, w, p, func(offer string) {
		if strings.Contains(offer, fmt.Sprint(track.SSRC)) {
			t.Fatalf("the node's offer still sends the removed track:\n%s", offer)
		}
	})

	// The member stops sending: its stream is unbound, and the node told.
	if err := p.pc.RemoveTrack(p.sender); err != nil {
		t.Fatal(err)
	}
	memberOffers(t, w, p, nil)
	if w.receiving(pubSSRC) {
		t.Fatal("the member's stream is still bound after it stopped sending")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ended) != 1 || ended[0] != pubSSRC {
		t.Fatalf("streams ended: %v, want [%d]", ended, pubSSRC)
	}
}

// waitConnected waits for a connection's connected channel.
func waitConnected(t *testing.T, connected <-chan struct{}) {
	t.Helper()
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection never connected")
	}
}

// everyTick calls send every 10 ms with 1, 2, 3... until stop closes.
func everyTick(stop <-chan struct{}, send func(seq uint16)) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(1); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		send(seq)
	}
}

// memberOffers has the member offer and the node answer, with place
// putting the node's tracks on sections in the answer.
func memberOffers(t *testing.T, w *wireConn, p *wirePeer, place func([]sdpneg.Section) map[string]sdpneg.Track) {
	t.Helper()
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, _, err := w.applyOffer(offer.SDP, place)
	if err != nil {
		t.Fatalf("the node refused the member's offer: %v", err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("the member refused the node's answer: %v\n%s", err, answer)
	}
}

// renegotiate has the node offer, check the offer, and the member
// answer.
func renegotiate(t *testing.T, w *wireConn, p *wirePeer, check func(offer string)) {
	t.Helper()
	offer, err := w.createOffer()
	if err != nil || offer == "" {
		t.Fatalf("the node's offer: %q, %v", offer, err)
	}
	check(offer)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatalf("pion refused the node's offer: %v\n%s", err, offer)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	if err := w.applyAnswer(answer.SDP); err != nil {
		t.Fatalf("the node refused pion's answer: %v", err)
	}
}

// TestWireConnAnswersWithTracksOnReceiveOnlySections: a viewer without a
// camera offers a section to receive video on; the node puts a track on
// it in its answer, without an offer of its own, and the viewer
// receives it.
func TestWireConnAnswersWithTracksOnReceiveOnlySections(t *testing.T) {
	w, connected := newTestWireConn(t, wireConnConfig{OnStream: func(inStream) func([]byte, interceptor.Attributes) { return nil }})
	p := newWirePeerWith(t, false)
	track := sdpneg.Track{ID: "camera", StreamID: "other/cam", Kind: sdpneg.Video, SSRC: 7777, CNAME: "node"}
	memberOffers(t, w, p, func(secs []sdpneg.Section) map[string]sdpneg.Track {
		for _, s := range secs {
			if s.Kind == sdpneg.Video && !s.MemberSends {
				return map[string]sdpneg.Track{s.Mid: track}
			}
		}
		t.Error("no section to receive video on in the viewer's offer")
		return nil
	})
	out, pt, err := w.bindTrack(track.ID)
	if err != nil {
		t.Fatalf("the track is not on the answered section: %v", err)
	}
	waitConnected(t, connected)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		everyTick(stop, func(seq uint16) {
			h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: track.SSRC}
			_, _ = out.Write(&h, []byte{0x10, 0, 0x9d, 0x01, 0x2a, 1, 2, 3}, nil)
		})
	})
	eventually.True(t, 10*time.Second, "the node's track at the viewer, from the first answer", func() bool { return p.got.Load() > 30 })
	if s, _ := p.stream.Load().(string); s != track.StreamID {
		t.Fatalf("the viewer got the track in stream %q, want %q", s, track.StreamID)
	}
	if offer, err := w.createOffer(); err != nil || offer != "" {
		t.Fatalf("the node wants an offer after placing its track in the answer: %q, %v", offer, err)
	}
}

// dropOnce is the node's socket losing one SRTP packet on the way in:
// the first of SSRC ssrc (once set) with sequence number seq.
type dropOnce struct {
	*net.UDPConn
	ssrc    atomic.Uint32
	seq     uint16
	dropped atomic.Bool
}

func (d *dropOnce) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := d.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || n < 12 || wire.Classify(b[:n]) != wire.KindSRTP || d.dropped.Load() {
			return n, from, err
		}
		if binary.BigEndian.Uint32(b[8:]) == d.ssrc.Load() && binary.BigEndian.Uint16(b[2:]) == d.seq {
			d.dropped.Store(true)
			continue
		}
		return n, from, err
	}
}

// TestWireConnRepairsFromRTX: a packet of the member's lost on the way
// in is asked for by the node's RTCP, comes again on the member's RTX
// stream, and reaches the node as the packet it repairs.
func TestWireConnRepairsFromRTX(t *testing.T) {
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lossy := &dropOnce{UDPConn: sock, seq: 30}
	port := wire.NewPort(lossy, nil)
	t.Cleanup(func() { _ = port.Close() })
	cert, err := wire.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := newTestChain(t, t.Name())
	var mu sync.Mutex
	repaired := map[uint16]uint32{} // sequence numbers that came on the RTX stream: their SSRC
	rtxStreams := 0
	connected := make(chan struct{})
	var once sync.Once
	w, err := newWireConn(wireConnConfig{Port: port, Certificate: cert, Chain: chain,
		OnState: func(s wire.State) {
			if s == wire.StateConnected {
				once.Do(func() { close(connected) })
			}
		},
		Candidates: []string{fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", sock.LocalAddr().(*net.UDPAddr).Port)},
		OnStream: func(s inStream) func([]byte, interceptor.Attributes) {
			if !s.RTX {
				return func([]byte, interceptor.Attributes) {}
			}
			mu.Lock()
			rtxStreams++
			mu.Unlock()
			return func(p []byte, _ interceptor.Attributes) {
				var h rtp.Header
				if _, err := h.Unmarshal(p); err != nil {
					t.Errorf("an unwrapped repair does not parse: %v", err)
					return
				}
				mu.Lock()
				repaired[h.SequenceNumber] = h.SSRC
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	p := newWirePeer(t)
	pubSSRC := uint32(p.sender.GetParameters().Encodings[0].SSRC)
	lossy.ssrc.Store(pubSSRC)
	memberOffers(t, w, p, nil)
	waitConnected(t, connected) // the member's packets from the first on reach the node
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		everyTick(stop, func(seq uint16) {
			_ = p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: []byte{0x10, 0, 1, 2}})
		})
	})
	eventually.True(t, 10*time.Second, "the packet to lose on its way", lossy.dropped.Load)
	eventually.True(t, 15*time.Second, "the lost packet repaired from the RTX stream", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return repaired[30] == pubSSRC
	})
	mu.Lock()
	defer mu.Unlock()
	if rtxStreams != 1 {
		t.Fatalf("%d RTX streams bound, want 1", rtxStreams)
	}
}

// TestWireConnFindsLayersAfterAnAudioSection: Chromium's offers put the
// microphone's section first, which negotiates no RID extension; the
// camera's layers after it are still told apart by their RIDs. (The
// connection once took every extension id from the first section, and
// published each layer of a camera as a track of its own.)
func TestWireConnFindsLayersAfterAnAudioSection(t *testing.T) {
	w, _ := newTestWireConn(t, wireConnConfig{OnStream: func(inStream) func([]byte, interceptor.Attributes) { return nil }})
	w.describe([]sdpneg.Section{
		{Mid: "0", Kind: sdpneg.Audio, MemberSends: true, Extensions: map[string]int{wire.MIDURI: 4}},
		{Mid: "1", Kind: sdpneg.Video, MemberSends: true, Extensions: map[string]int{wire.MIDURI: 4, wire.RIDURI: 10, wire.RepairedRIDURI: 11},
			Member: sdpneg.Sender{RIDs: []sdpneg.RID{{ID: "q"}, {ID: "h"}, {ID: "f"}}}},
	})
	for _, tt := range []struct {
		ext  uint8
		rid  string
		want wire.Route
	}{
		{10, "h", wire.Route{Mid: "1", RID: "h"}},
		{11, "q", wire.Route{Mid: "1", RID: "q", RTX: true}},
	} {
		h := &rtp.Header{Version: 2, SSRC: 1000 + uint32(tt.ext)}
		if err := h.SetExtension(4, []byte("1")); err != nil {
			t.Fatal(err)
		}
		if err := h.SetExtension(tt.ext, []byte(tt.rid)); err != nil {
			t.Fatal(err)
		}
		got, err := w.inbound.Route(h)
		if err != nil || got != tt.want {
			t.Errorf("extension %d: route %+v (%v), want %+v", tt.ext, got, err, tt.want)
		}
	}
}
