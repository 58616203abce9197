// Package nodetest is the suite every media.Node implementation passes: the
// in-process SFU and the client of a remote node alike. Its participants
// are pion peer connections on loopback that publish synthetic VP8 and
// count what they receive from each other member.
package nodetest

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// LoopbackSettings confine ICE to IPv4 UDP on the loopback interface, for
// nodes and participants in tests.
func LoopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// Factory starts a node for one test, limited to maxParticipants (0 for no
// limit), and stops it when the test ends.
type Factory func(t *testing.T, maxParticipants int) media.Node

// Run runs the suite against the nodes newNode makes.
func Run(t *testing.T, newNode Factory) {
	tests := []struct {
		name string
		run  func(*testing.T, Factory)
	}{
		{"ThreeParticipantsReceiveEachOthersTracks", threeParticipants},
		{"FullNodeRefuses", fullNodeRefuses},
		{"JoinAgainReplacesTheSession", joinAgainReplaces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newNode) })
	}
}

// Participant is a pion client in a room of a node under test.
type Participant struct {
	Name    string
	Session media.Participant

	t     *testing.T
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	quiet *atomic.Bool

	mu       sync.Mutex
	received map[string]*atomic.Int64 // packets by stream id
	closed   chan error
	speakers []string

	sdpMu sync.Mutex // descriptions are applied one at a time, in order
}

// Answer implements media.Events.
func (p *Participant) Answer(sdp string) {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil && !p.quiet.Load() {
		p.t.Errorf("%s: remote answer: %v", p.Name, err)
	}
}

// Offer implements media.Events: it answers off the node's goroutine, as a
// browser would.
func (p *Participant) Offer(sdp string) {
	go func() {
		p.sdpMu.Lock()
		defer p.sdpMu.Unlock()
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			if !p.quiet.Load() {
				p.t.Errorf("%s: remote offer: %v", p.Name, err)
			}
			return
		}
		answer, err := p.pc.CreateAnswer(nil)
		if err == nil {
			err = p.pc.SetLocalDescription(answer)
		}
		if err == nil {
			err = p.Session.Answer(p.pc.LocalDescription().SDP)
		}
		if err != nil && !p.quiet.Load() {
			p.t.Errorf("%s: answer: %v", p.Name, err)
		}
	}()
}

// Speaker implements media.Events.
func (p *Participant) Speaker(member string) {
	p.mu.Lock()
	p.speakers = append(p.speakers, member)
	p.mu.Unlock()
}

// Closed implements media.Events.
func (p *Participant) Closed(err error) {
	select {
	case p.closed <- err:
	default:
	}
}

// Join adds a participant that publishes one VP8 track (stream id = name)
// to room on node and sends its offer.
func Join(t *testing.T, node media.Node, room, name string, quiet *atomic.Bool) (*Participant, error) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(LoopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &Participant{t: t, Name: name, pc: pc, received: map[string]*atomic.Int64{}, quiet: quiet, closed: make(chan error, 1)}
	t.Cleanup(func() { pc.Close() })
	p.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(p.track); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		counter := &atomic.Int64{}
		p.mu.Lock()
		p.received[remote.StreamID()] = counter
		p.mu.Unlock()
		buf := make([]byte, 1500)
		for {
			if _, _, err := remote.Read(buf); err != nil {
				return
			}
			counter.Add(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Session, err = node.Join(ctx, room, name, p)
	if err != nil {
		pc.Close()
		return nil, err
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			if err := p.Session.Candidate(c.ToJSON()); err != nil && !quiet.Load() {
				t.Errorf("%s: node candidate: %v", name, err)
			}
		}
	})
	p.sdpMu.Lock()
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	p.sdpMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Session.Offer(pc.LocalDescription().SDP); err != nil {
		t.Fatalf("%s: offer: %v", name, err)
	}
	return p, nil
}

// Send writes synthetic VP8 packets every 10 ms until stop is closed.
func (p *Participant) Send(stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Go(func() {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: make([]byte, 600)}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pkt.SequenceNumber, pkt.Timestamp = seq, uint32(seq)*900
			if err := p.track.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
	})
}

// From returns how many packets p received on stream.
func (p *Participant) From(stream string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.received[stream]; c != nil {
		return c.Load()
	}
	return 0
}

// WaitAllReceive waits until every participant received at least n packets
// from every other one; the node names a forwarded stream "member/stream".
func WaitAllReceive(t *testing.T, ps []*Participant, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		missing := ""
		for _, p := range ps {
			for _, other := range ps {
				if other != p && p.From(other.Name+"/"+other.Name) < n {
					missing = p.Name + " from " + other.Name
				}
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no media %s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func threeParticipants(t *testing.T, newNode Factory) {
	node := newNode(t, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	quiet := &atomic.Bool{} // shutting down: late renegotiations may fail
	defer func() { quiet.Store(true); close(stop); wg.Wait() }()

	var ps []*Participant
	for _, n := range []string{"clinician", "patient", "interpreter"} {
		p, err := Join(t, node, "c_1", n, quiet)
		if err != nil {
			t.Fatalf("join %s: %v", n, err)
		}
		p.Send(stop, &wg)
		ps = append(ps, p)
	}
	WaitAllReceive(t, ps, 20, 20*time.Second)
	if l := node.Load(); l.Rooms != 1 || l.Participants != 3 {
		t.Fatalf("Load = %+v, want 1 room, 3 participants", l)
	}

	// When one leaves, the others keep receiving from each other.
	ps[2].Session.Close()
	waitLoad(t, node, 2)
	before := ps[0].From("patient/patient")
	WaitAllReceive(t, ps[:2], before+20, 10*time.Second)
	select {
	case err := <-ps[2].closed:
		t.Fatalf("Close reported Closed(%v) to the member that closed", err)
	default:
	}
}

func waitLoad(t *testing.T, node media.Node, participants int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); node.Load().Participants != participants; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Load = %+v, want %d participants", node.Load(), participants)
		}
	}
}

func fullNodeRefuses(t *testing.T, newNode Factory) {
	node := newNode(t, 1)
	quiet := &atomic.Bool{}
	defer quiet.Store(true)
	if _, err := Join(t, node, "c_1", "one", quiet); err != nil {
		t.Fatal(err)
	}
	if l := node.Load(); l.HasRoom(1) || l.MaxParticipants != 1 {
		t.Fatalf("a full node reports %+v", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := node.Join(ctx, "c_2", "two", &Participant{quiet: quiet, closed: make(chan error, 1)}); !errors.Is(err, media.ErrFull) {
		t.Fatalf("second join on a full node: %v, want ErrFull", err)
	}
}

func joinAgainReplaces(t *testing.T, newNode Factory) {
	node := newNode(t, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	quiet := &atomic.Bool{}
	defer func() { quiet.Store(true); close(stop); wg.Wait() }()
	a, err := Join(t, node, "c_1", "a", quiet)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Join(t, node, "c_1", "b", quiet)
	if err != nil {
		t.Fatal(err)
	}
	a.Send(stop, &wg)
	b.Send(stop, &wg)
	WaitAllReceive(t, []*Participant{a, b}, 10, 20*time.Second)
	// b reloads its page: a new connection for the same member.
	b2, err := Join(t, node, "c_1", "b", quiet)
	if err != nil {
		t.Fatal(err)
	}
	b2.Send(stop, &wg)
	waitLoad(t, node, 2)
	WaitAllReceive(t, []*Participant{a, b2}, 10, 20*time.Second)
}
