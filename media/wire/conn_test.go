package wire

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
)

// node is one Conn on a UDP socket of its own, read by one goroutine
// that delivers every datagram, as the node's shared port does.
type node struct {
	conn   *Conn
	sock   *net.UDPConn // nil on a shared Port
	addr   *net.UDPAddr // where the peer sends
	tcp    *net.TCPAddr // the ICE-TCP port, if any
	states chan State
	wg     sync.WaitGroup

	mu   sync.Mutex
	rtp  []rtp.Header
	rtcp []rtcp.Packet
	errs atomic.Int64 // datagrams Deliver refused
}

func (n *node) RTP(p []byte, h *rtp.Header) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rtp = append(n.rtp, h.Clone())
}

func (n *node) RTCP(p []byte) {
	pkts, err := rtcp.Unmarshal(p)
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rtcp = append(n.rtcp, pkts...)
}

func (n *node) received() (pkts int, ssrcs map[uint32]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ssrcs = map[uint32]bool{}
	for _, h := range n.rtp {
		ssrcs[h.SSRC] = true
	}
	return len(n.rtp), ssrcs
}

func (n *node) senderReports() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, p := range n.rtcp {
		if _, ok := p.(*rtcp.SenderReport); ok {
			k++
		}
	}
	return k
}

func newNode(t *testing.T, cert Certificate) *node {
	t.Helper()
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{sock: sock, addr: sock.LocalAddr().(*net.UDPAddr), states: make(chan State, 16)}
	n.conn, err = New(Config{
		Local:       Credentials{Ufrag: "nodeufrag", Pwd: "node-password-of-24-chars"},
		Certificate: cert,
		LocalAddr:   sock.LocalAddr(),
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := sock.WriteToUDPAddrPort(b, to)
			return err
		},
		Handler: n,
		OnState: func(s State) { n.states <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := sock.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n.conn.Deliver(buf[:k], from) != nil {
				n.errs.Add(1)
			}
		}
	})
	t.Cleanup(func() {
		_ = n.conn.Close()
		_ = sock.Close()
		n.wg.Wait()
	})
	return n
}

// waitState waits for the connection to report s.
func (n *node) waitState(t *testing.T, s State) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got := <-n.states:
			if got == s {
				return
			}
		case <-timeout:
			t.Fatalf("the connection never reported %v; it is %v", s, n.conn.State())
		}
	}
}

// answer is the node's answer to a pion offer of one audio section: what
// the node's own session descriptions carry for its transport.
func (n *node) answer(t *testing.T, offer string, fingerprint string) string {
	t.Helper()
	mid := attr(offer, "mid")
	port := n.addr.Port
	lines := []string{
		"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
		"a=group:BUNDLE " + mid, "a=ice-lite",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0",
		"a=mid:" + mid, "a=sendrecv", "a=rtcp-mux",
		"a=ice-ufrag:" + n.conn.cfg.Local.Ufrag, "a=ice-pwd:" + n.conn.cfg.Local.Pwd,
		"a=fingerprint:" + fingerprint, "a=setup:passive",
		"a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
		"a=msid:node audio", "a=ssrc:4242 cname:node",
		fmt.Sprintf("a=candidate:1 1 udp 2130706431 127.0.0.1 %d typ host", port),
	}
	if n.tcp != nil {
		lines = append(lines, fmt.Sprintf("a=candidate:2 1 tcp 1518280447 127.0.0.1 %d typ host tcptype passive", n.tcp.Port))
	}
	lines = append(lines, "a=end-of-candidates")
	return strings.Join(lines, "\r\n") + "\r\n"
}

// attr returns the value of the first a=name: line of sdp.
func attr(sdp, name string) string {
	for line := range strings.SplitSeq(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// peer is a pion PeerConnection playing the browser: it offers one audio
// section, sends on it, and reads what the node sends.
type peer struct {
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	sender   *webrtc.RTPSender
	got      atomic.Int64 // packets of the node's track
	gotSSRC  atomic.Uint32
	rtcpSeen atomic.Int64 // RTCP packets the node sent
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	return newPeerWith(t, webrtc.SettingEngine{})
}

func newPeerWith(t *testing.T, se webrtc.SettingEngine) *peer {
	t.Helper()
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "peer")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{pc: pc, track: track, sender: sender}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.gotSSRC.Store(uint32(remote.SSRC()))
		for {
			if _, _, err := remote.ReadRTP(); err != nil {
				return
			}
			p.got.Add(1)
		}
	})
	go func() { // ends when pc closes
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			p.rtcpSeen.Add(int64(len(pkts)))
		}
	}()
	return p
}

// connect has p offer and n answer, and starts the node's side.
func connect(t *testing.T, n *node, p *peer, fingerprints []string) {
	t.Helper()
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	remote := Credentials{Ufrag: attr(offer.SDP, "ice-ufrag"), Pwd: attr(offer.SDP, "ice-pwd")}
	if fingerprints == nil {
		fingerprints = []string{attr(offer.SDP, "fingerprint")}
	}
	if err := n.conn.Start(remote, fingerprints, false); err != nil {
		t.Fatal(err)
	}
	answer := n.answer(t, offer.SDP, n.conn.cfg.Certificate.Fingerprint)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("pion refused the node's answer: %v\n%s", err, answer)
	}
}

// sendAudio has p send 20 ms Opus packets until stop closes.
func (p *peer) sendAudio(stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(0); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		_ = p.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: []byte{0xfc, 1, 2, 3}})
	}
}

// sendAudio has the node's connection send its own track, SSRC 4242,
// until stop closes.
func (n *node) sendAudio(t *testing.T, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(100); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 4242}
		if err := n.conn.WriteRTP(&h, []byte{0xfc, 9, 9}); err != nil {
			t.Errorf("WriteRTP: %v", err)
			return
		}
	}
}

func testCertificate(t *testing.T) Certificate {
	t.Helper()
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestConnCarriesMediaBothWaysWithPion: a pion PeerConnection, a full
// ICE agent and the DTLS client, connects to the node's connection; its
// audio arrives decrypted at the handler with its sender reports, and
// what the node writes arrives at pion as a track, with the node's RTCP;
// pion's close reaches the node as StateClosed.
func TestConnCarriesMediaBothWaysWithPion(t *testing.T) {
	n := newNode(t, testCertificate(t))
	p := newPeer(t)
	connect(t, n, p, nil)
	n.waitState(t, StateConnected)
	if _, ok := n.conn.Remote(); !ok {
		t.Fatal("connected without a selected pair")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopped()
	wg.Go(func() { p.sendAudio(stop) })
	want := uint32(p.sender.GetParameters().Encodings[0].SSRC)
	wg.Go(func() { n.sendAudio(t, stop) })
	wg.Go(func() { // a receiver report for pion's track every 200 ms
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		rr, _ := (&rtcp.ReceiverReport{SSRC: 4242, Reports: []rtcp.ReceptionReport{{SSRC: want}}}).Marshal()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := n.conn.WriteRTCP(rr); err != nil {
				t.Errorf("WriteRTCP: %v", err)
				return
			}
		}
	})
	eventually.True(t, 10*time.Second, "pion's audio at the node", func() bool {
		k, ssrcs := n.received()
		return k > 20 && ssrcs[want]
	})
	eventually.True(t, 10*time.Second, "pion's sender reports at the node", func() bool { return n.senderReports() > 0 })
	eventually.True(t, 10*time.Second, "the node's track at pion", func() bool { return p.got.Load() > 20 && p.gotSSRC.Load() == 4242 })
	eventually.True(t, 10*time.Second, "the node's receiver reports at pion", func() bool { return p.rtcpSeen.Load() > 0 })

	stopped()
	if err := p.pc.Close(); err != nil {
		t.Fatal(err)
	}
	n.waitState(t, StateClosed)
	if err := n.conn.WriteRTP(&rtp.Header{Version: 2, SSRC: 4242}, nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("a write after the remote side closed: %v, want ErrNotConnected", err)
	}
}

// TestConnClosedByTheNodeEndsThePeer: the node's Close sends
// close_notify, which ends pion's connection.
func TestConnClosedByTheNodeEndsThePeer(t *testing.T) {
	n := newNode(t, testCertificate(t))
	p := newPeer(t)
	var closed atomic.Bool
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed {
			closed.Store(true)
		}
	})
	connect(t, n, p, nil)
	n.waitState(t, StateConnected)
	if err := n.conn.Close(); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 20*time.Second, "pion's connection ended by the node's close_notify", closed.Load)
}

// TestConnRefusesACertificateNotInTheDescription: a remote certificate
// whose fingerprint the remote description did not give fails the
// handshake, and no media is taken.
func TestConnRefusesACertificateNotInTheDescription(t *testing.T) {
	n := newNode(t, testCertificate(t))
	p := newPeer(t)
	other := testCertificate(t)
	connect(t, n, p, []string{other.Fingerprint})
	n.waitState(t, StateFailed)
	if k, _ := n.received(); k != 0 {
		t.Fatalf("%d packets taken from a peer that failed the handshake", k)
	}
}
