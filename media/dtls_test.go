package media_test

import (
	"context"
	"net"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// answerEvents keeps the node's answer.
type answerEvents struct{ answer chan string }

func (e answerEvents) Answer(sdp string) {
	select {
	case e.answer <- sdp:
	default:
	}
}
func (answerEvents) Offer(string)   {}
func (answerEvents) Speaker(string) {}
func (answerEvents) Closed(error)   {}

// recordingConn notes the first DTLS handshake message type read through
// it (2 ServerHello, 3 HelloVerifyRequest) and counts the bytes read.
type recordingConn struct {
	net.PacketConn
	read  atomic.Int64
	first atomic.Int32
}

func (c *recordingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		c.read.Add(int64(n))
		// Record header (13 bytes), then the handshake message type.
		if n > 13 && b[0] == 22 {
			c.first.CompareAndSwap(0, int32(b[13]))
		}
	}
	return n, addr, err
}

// dtlsClientHello runs a DTLS client over conn toward addr until ctx ends
// or the handshake does, the way a browser's would start.
func dtlsClientHello(ctx context.Context, t *testing.T, conn net.PacketConn, addr net.Addr) error {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	c, err := dtls.ClientWithOptions(conn, addr,
		dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.HandshakeContext(ctx)
}

var (
	ufragRe = regexp.MustCompile(`a=ice-ufrag:(\S+)`)
	pwdRe   = regexp.MustCompile(`a=ice-pwd:(\S+)`)
	// a UDP host candidate of component 1
	candidateRe = regexp.MustCompile(`a=(candidate:\S+ 1 udp .*typ host.*)\r\n`)
)

// TestDTLSAnswersOnlyICEValidatedAddress: the node's DTLS server skips the
// HelloVerifyRequest cookie exchange (the first flight it sends to a
// ClientHello is the ServerHello), which is safe because a ClientHello from
// an address ICE has not validated with the connection's credentials gets
// no answer at all, even when that address names the session's ICE
// username. See docs/operations.md, "DTLS without the cookie exchange".
func TestDTLSAnswersOnlyICEValidatedAddress(t *testing.T) {
	for _, tt := range []struct{ name, udpListen string }{
		{"one port", "127.0.0.1:0"},
		{"a port per participant", ""},
	} {
		t.Run(tt.name, func(t *testing.T) { dtlsOnlyToValidated(t, tt.udpListen) })
	}
}

func dtlsOnlyToValidated(t *testing.T, udpListen string) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), UDPListen: udpListen})

	// The participant's ICE agent, without a peer connection above it:
	// the node's DTLS server then waits for a ClientHello.
	agent, err := ice.NewAgentWithOptions(
		ice.WithNetworkTypes([]ice.NetworkType{ice.NetworkTypeUDP4}),
		ice.WithCandidateTypes([]ice.CandidateType{ice.CandidateTypeHost}),
		ice.WithIncludeLoopback(),
		ice.WithInterfaceFilter(func(name string) bool { return name == "lo" }),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		t.Fatal(err)
	}
	offer := offerWithCredentials(t, ufrag, pwd)

	events := answerEvents{answer: make(chan string, 1)}
	sess, err := sfu.Join(t.Context(), "c_1", "a", events)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Offer(offer); err != nil {
		t.Fatal(err)
	}
	answer := <-events.answer
	nodeUfrag, nodePwd := ufragRe.FindStringSubmatch(answer)[1], pwdRe.FindStringSubmatch(answer)[1]
	line := candidateRe.FindStringSubmatch(answer)
	if line == nil {
		t.Fatalf("no candidate in the answer:\n%s", answer)
	}
	cand, err := ice.UnmarshalCandidate(line[1])
	if err != nil {
		t.Fatal(err)
	}
	nodeAddr := &net.UDPAddr{IP: net.ParseIP(cand.Address()), Port: cand.Port()}
	if err := agent.AddRemoteCandidate(cand); err != nil {
		t.Fatal(err)
	}
	if err := agent.OnCandidate(func(ice.Candidate) {}); err != nil {
		t.Fatal(err)
	}
	if err := agent.GatherCandidates(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	iceConn, err := agent.Dial(ctx, nodeUfrag, nodePwd)
	if err != nil {
		t.Fatalf("ICE: %v", err)
	}

	// Another address: a binding request naming the session's username
	// but without its password, then a ClientHello.
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(nodeUfrag+":"+ufrag),
		stun.NewShortTermIntegrity("not the password"), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.WriteTo(req.Raw, nodeAddr); err != nil {
		t.Fatal(err)
	}
	strangerConn := &recordingConn{PacketConn: stranger}
	sctx, scancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	err = dtlsClientHello(sctx, t, strangerConn, nodeAddr)
	scancel()
	if err == nil || strangerConn.read.Load() != 0 {
		t.Fatalf("a ClientHello from an address ICE did not validate: handshake error %v, %d bytes answered; want no answer",
			err, strangerConn.read.Load())
	}

	// The address ICE validated is answered, with the ServerHello first.
	valid := &recordingConn{PacketConn: dtlsnet.PacketConnFromConn(iceConn)}
	vctx, vcancel := context.WithTimeout(ctx, 5*time.Second)
	err = dtlsClientHello(vctx, t, valid, iceConn.RemoteAddr())
	vcancel()
	switch first := valid.first.Load(); {
	case first == 0:
		t.Fatalf("no DTLS answer over the ICE-validated pair (handshake: %v)", err)
	case first != 2:
		t.Fatalf("first handshake message answered: type %d, want 2 (ServerHello, no HelloVerifyRequest)", first)
	}
	// The handshake itself may fail or not: the offer's fingerprint is
	// not this client's certificate, which the node checks afterwards.
}

// offerWithCredentials is a real offer (one receive-only audio section)
// whose ICE credentials are the given ones and which lists no candidate:
// the node learns the participant's address from its checks.
func offerWithCredentials(t *testing.T, ufrag, pwd string) string {
	api := webrtc.NewAPI(webrtc.WithSettingEngine(nodetest.LoopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp := ufragRe.ReplaceAllString(offer.SDP, "a=ice-ufrag:"+ufrag)
	sdp = pwdRe.ReplaceAllString(sdp, "a=ice-pwd:"+pwd)
	return regexp.MustCompile(`(?m)^a=candidate:.*\r\n`).ReplaceAllString(sdp, "")
}
