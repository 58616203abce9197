package media

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media/sdpneg"
	"github.com/openconsult/openconsult/media/wire"
)

// TestWireConnPublishesAndSubscribes: a pion member publishing VP8 joins
// a connection on the node's own transport with its offer; the node's
// answer brings the transport up, the member's stream is found in its
// section with its codec and read up the chain; then the node offers a
// track of its own, the member answers, and the member receives it.
func TestWireConnPublishesAndSubscribes(t *testing.T) {
	chain, _ := newTestChain(t, "member")
	port, sock, cert := newTestPort(t)
	var (
		mu       sync.Mutex
		streams  []inStream
		received atomic.Int64
	)
	connected := make(chan struct{})
	var once sync.Once
	w, err := newWireConn(wireConnConfig{
		Port: port, Certificate: cert, Chain: chain,
		Candidates: []string{fmt.Sprintf("candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", sock.LocalAddr().(*net.UDPAddr).Port)},
		OnStream: func(s inStream) func([]byte, interceptor.Attributes) {
			mu.Lock()
			streams = append(streams, s)
			mu.Unlock()
			return func([]byte, interceptor.Attributes) { received.Add(1) }
		},
		OnState: func(s wire.State) {
			if s == wire.StateConnected {
				once.Do(func() { close(connected) })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	p := newWirePeer(t)
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := w.applyOffer(offer.SDP)
	if err != nil {
		t.Fatalf("the node refused pion's offer: %v", err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("pion refused the node's answer: %v\n%s", err, answer)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection never connected")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	vp8 := []byte{0x10, 0, 0x9d, 0x01, 0x2a, 1, 2, 3}
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: vp8})
		}
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
	nodeOffer, err := w.createOffer()
	if err != nil || nodeOffer == "" {
		t.Fatalf("the node's offer: %q, %v", nodeOffer, err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: nodeOffer}); err != nil {
		t.Fatalf("pion refused the node's offer: %v\n%s", err, nodeOffer)
	}
	memberAnswer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(memberAnswer); err != nil {
		t.Fatal(err)
	}
	if err := w.applyAnswer(memberAnswer.SDP); err != nil {
		t.Fatalf("the node refused pion's answer: %v", err)
	}
	out, pt, err := w.bindTrack("camera")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: track.SSRC}
			_, _ = out.Write(&h, vp8, nil)
		}
	})
	eventually.True(t, 10*time.Second, "the node's track at the member", func() bool { return p.got.Load() > 30 })
	if s, _ := p.stream.Load().(string); s != track.StreamID {
		t.Fatalf("the member got the node's track in stream %q, want %q", s, track.StreamID)
	}
}
