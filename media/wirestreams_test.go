package media

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media/wire"
)

// wirePeer is a pion PeerConnection with pion's default interceptors,
// playing a browser that publishes one VP8 track and receives one, and
// counts the RTCP the node sends it.
type wirePeer struct {
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender

	mu     sync.Mutex
	seen   map[string]int  // RTCP packets from the node, by type
	nacked map[uint16]bool // sequence numbers the node asked for again
	got    atomic.Int64    // packets of the node's track
	stream atomic.Value    // the stream id of the node's track
}

func (p *wirePeer) note(pkts []rtcp.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pk := range pkts {
		p.seen[fmt.Sprintf("%T", pk)]++
		if n, ok := pk.(*rtcp.TransportLayerNack); ok {
			for _, pair := range n.Nacks {
				for _, seq := range pair.PacketList() {
					p.nacked[seq] = true
				}
			}
		}
	}
}

func (p *wirePeer) count(kind any) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[fmt.Sprintf("%T", kind)]
}

func newWirePeer(t *testing.T) *wirePeer {
	t.Helper()
	return newWirePeerWith(t, true)
}

// newWirePeerWith is a member that publishes VP8 if publish is set, and
// otherwise offers one section to receive video on, as a viewer without
// a camera does.
func newWirePeerWith(t *testing.T, publish bool) *wirePeer {
	t.Helper()
	// As a browser: pion's default interceptors, and every packet sent
	// numbered for transport-wide feedback.
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p := &wirePeer{pc: pc, seen: map[string]int{}, nacked: map[uint16]bool{}}
	if !publish {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	} else if err := p.publish(); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(p.onTrack)
	return p
}

// publish adds the member's VP8 track, and reads the node's RTCP about it.
func (p *wirePeer) publish() error {
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "peer")
	if err != nil {
		return err
	}
	sender, err := p.pc.AddTrack(track)
	if err != nil {
		return err
	}
	p.track, p.sender = track, sender
	go func() { // ends when pc closes
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			p.note(pkts)
		}
	}()
	return nil
}

// onTrack counts what the node sends, and reads the node's RTCP about it.
func (p *wirePeer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.stream.Store(remote.StreamID())
	go func() { // ends with the track
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			p.note(pkts)
		}
	}()
	for {
		if _, _, err := remote.ReadRTP(); err != nil {
			return
		}
		p.got.Add(1)
	}
}

// nodeAnswer is the node's answer to offer: what a pion answerer with a
// VP8 track of SSRC-to-be negotiates, on the node's transport (ICE-lite,
// its credentials, fingerprint and candidate, setup:passive).
func nodeAnswer(t *testing.T, offer string, local wire.Credentials, fingerprint string, port int) (answer string, ssrc uint32) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ans, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer ans.Close()
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "node", "node")
	if _, err := ans.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	if err := ans.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	a, err := ans.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(a.SDP), "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + local.Ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + local.Pwd
		case strings.HasPrefix(line, "a=fingerprint:"):
			line = "a=fingerprint:" + fingerprint
		case strings.HasPrefix(line, "a=setup:"):
			line = "a=setup:passive"
		case strings.HasPrefix(line, "a=candidate:"), strings.HasPrefix(line, "a=end-of-candidates"), strings.HasPrefix(line, "a=ice-options"),
			line == "a=cryptex": // the node does not encrypt header extensions (RFC 9335)
			continue
		case strings.HasPrefix(line, "m="):
			out = append(out, line, fmt.Sprintf("a=candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", port), "a=end-of-candidates")
			continue
		case strings.HasPrefix(line, "t="):
			out = append(out, line, "a=ice-lite")
			continue
		}
		out = append(out, line)
	}
	m := regexp.MustCompile(`a=ssrc:(\d+) `).FindStringSubmatch(a.SDP)
	if m == nil {
		t.Fatalf("no SSRC in pion's answer:\n%s", a.SDP)
	}
	v, _ := strconv.ParseUint(m[1], 10, 32)
	return strings.Join(out, "\r\n") + "\r\n", uint32(v)
}

// negotiatedVP8 is the stream info a negotiated VP8 stream of ssrc has,
// with the offer's transport-cc extension.
func negotiatedVP8(t *testing.T, offer string, ssrc uint32) *interceptor.StreamInfo {
	t.Helper()
	m := regexp.MustCompile(`a=extmap:(\d+) ` + regexp.QuoteMeta(sdp.TransportCCURI)).FindStringSubmatch(offer)
	if m == nil {
		t.Fatal("no transport-cc in the offer")
	}
	id, _ := strconv.Atoi(m[1])
	pt := regexp.MustCompile(`a=rtpmap:(\d+) VP8/90000`).FindStringSubmatch(offer)
	ptv, _ := strconv.Atoi(pt[1])
	return &interceptor.StreamInfo{SSRC: ssrc, PayloadType: uint8(ptv), MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: id}},
		RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}}
}

// TestWireStreamsRunTheNodesRTCP: the node's interceptor chain runs on
// its own transport against a pion peer: the node's receiver reports,
// transport-wide feedback and NACKs reach the publishing peer, a packet
// the peer never sent is asked for, the node's track reaches the peer
// with sender reports, and the peer's transport-wide feedback reaches
// the node's estimator.
// newTestChain is the node's interceptor chain for a connection id, with
// the node's RTCP scheduler running until the test ends, and the map of
// estimators by connection.
func newTestChain(t *testing.T, id string) (interceptor.Interceptor, *sync.Map) {
	t.Helper()
	var estimators, rtx sync.Map
	m, err := newMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sched := newRTCPScheduler(time.Now())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { sched.run(stop) })
	t.Cleanup(func() { close(stop); wg.Wait() })
	api, err := newAPI(webrtc.SettingEngine{}, &estimators, &rtx, m, sched)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := api.reg.Build(id)
	if err != nil {
		t.Fatal(err)
	}
	return chain, &estimators
}

// newTestPort is a shared port on loopback, with the node's certificate.
func newTestPort(t *testing.T) (*wire.Port, *net.UDPConn, wire.Certificate) {
	t.Helper()
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := wire.NewPort(sock, nil)
	t.Cleanup(func() { _ = port.Close() })
	cert, err := wire.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return port, sock, cert
}

func TestWireStreamsRunTheNodesRTCP(t *testing.T) {
	chain, estimators := newTestChain(t, "conn")
	streams := newWireStreams(chain)
	defer streams.close()
	port, sock, cert := newTestPort(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	local := wire.Credentials{Ufrag: "wirenode", Pwd: "node-password-of-24-chars"}
	connected := make(chan struct{})
	conn, err := wire.New(wire.Config{Local: local, Certificate: cert, LocalAddr: port.LocalAddr(), Send: port.Send, Handler: streams,
		OnState: func(s wire.State) {
			if s == wire.StateConnected {
				close(connected)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := port.Route(local.Ufrag, conn); err != nil {
		t.Fatal(err)
	}

	p := newWirePeer(t)
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, nodeSSRC := nodeAnswer(t, offer.SDP, local, cert.Fingerprint, sock.LocalAddr().(*net.UDPAddr).Port)
	pubSSRC := uint32(p.sender.GetParameters().Encodings[0].SSRC)
	var received atomic.Int64
	streams.bindRemote(negotiatedVP8(t, offer.SDP, pubSSRC), func([]byte, interceptor.Attributes) { received.Add(1) })
	streams.attach(conn)
	if err := conn.Start(wire.Credentials{Ufrag: attrOf(offer.SDP, "ice-ufrag"), Pwd: attrOf(offer.SDP, "ice-pwd")},
		[]string{attrOf(offer.SDP, "fingerprint")}, false); err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("pion refused the answer: %v\n%s", err, answer)
	}
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("the node's connection never connected")
	}

	out := streams.bindLocal(negotiatedVP8(t, offer.SDP, nodeSSRC))
	const missing = 7 // a packet the peer skips, which the node asks for
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			vp8 := []byte{0x10, 0, 0x9d, 0x01, 0x2a, 1, 2, 3}
			if seq != missing {
				_ = p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: vp8})
			}
			h := rtp.Header{Version: 2, PayloadType: uint8(negotiatedVP8(t, offer.SDP, nodeSSRC).PayloadType), SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: nodeSSRC}
			_, _ = out.Write(&h, vp8, nil)
		}
	})
	eventually.True(t, 10*time.Second, "the peer's video through the node's chain", func() bool { return received.Load() > 50 })
	eventually.True(t, 10*time.Second, "receiver reports, feedback and a NACK at the peer", func() bool {
		return p.count(&rtcp.ReceiverReport{}) > 0 && p.count(&rtcp.TransportLayerCC{}) > 0 && p.count(&rtcp.TransportLayerNack{}) > 0
	})
	p.mu.Lock()
	asked := p.nacked[missing]
	p.mu.Unlock()
	if !asked {
		t.Fatalf("the node asked for %v, not for the packet never sent (%d)", p.nacked, missing)
	}
	eventually.True(t, 10*time.Second, "the node's track and sender reports at the peer", func() bool {
		return p.got.Load() > 50 && p.count(&rtcp.SenderReport{}) > 0
	})
	e, _ := estimators.Load("conn")
	eventually.True(t, 10*time.Second, "the peer's feedback read by the node's estimator", func() bool { return e.(*leanBWE).reports.Load() > 0 })
	if _, ok := conn.Remote(); !ok {
		t.Fatal("no selected pair")
	}
}

// attrOf returns the value of the first a=name: line of sdp.
func attrOf(desc, name string) string {
	for line := range strings.SplitSeq(desc, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// TestForEachFeedback: each NACK, PLI and FIR entry of a compound packet
// is handed over with the stream it is about; reports, transport-wide
// feedback and REMB are not, and a malformed packet ends the walk.
func TestForEachFeedback(t *testing.T) {
	compound, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1},
		&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 5, Nacks: []rtcp.NackPair{{PacketID: 9}}},
		&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 6},
		&rtcp.FullIntraRequest{SenderSSRC: 1, FIR: []rtcp.FIREntry{{SSRC: 7}, {SSRC: 8}}},
		&rtcp.TransportLayerCC{SenderSSRC: 1, MediaSSRC: 9, PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 1}}, PacketStatusCount: 1},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 1e6, SSRCs: []uint32{10}},
	})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 5, Nacks: []rtcp.NackPair{{PacketID: 9}}}})
	tests := []struct {
		name string
		b    []byte
		want []uint32
	}{
		{"compound", compound, []uint32{5, 6, 7, 8}},
		{"cut in the middle of the PLI", compound[:len(head)+6], []uint32{5}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint32
			forEachFeedback(tt.b, func(ssrc uint32, pkt []byte) {
				if _, err := rtcp.Unmarshal(pkt); err != nil {
					t.Errorf("handed over a packet that does not parse: %v", err)
				}
				got = append(got, ssrc)
			})
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzForEachFeedback: no compound packet makes the walk panic or hand
// over bytes outside it.
func FuzzForEachFeedback(f *testing.F) {
	b, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 6}, &rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 7}}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		forEachFeedback(b, func(_ uint32, pkt []byte) {
			if len(pkt) > len(b) {
				t.Fatalf("a packet of %d bytes from %d", len(pkt), len(b))
			}
		})
	})
}
