// Package nodetest is the suite every media.Node implementation passes: the
// in-process SFU and the client of a remote node alike. Its participants
// are pion peer connections on loopback that publish synthetic VP8 (one
// track, or three simulcast layers) and Opus with audio levels, answer
// keyframe requests with keyframes, and log what they receive from each
// other member; everything is checked on what arrives at a real client.
package nodetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
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

// Config is what a test asks of the node a Factory starts.
type Config struct {
	MaxParticipants int // 0 for no limit
	// UDPListen is the node's one UDP port for every participant (what
	// cmd/sfu runs), such as "127.0.0.1:0"; empty for a port per
	// participant (signal's embedded node by default).
	UDPListen string
	// OwnTransport runs the node's sessions on its own transport
	// (media.Config.OwnTransport) on the shared port.
	OwnTransport bool
}

// Apply sets c on a node's configuration.
func (c Config) Apply(mc *media.Config) {
	mc.MaxParticipants = c.MaxParticipants
	mc.UDPListen = c.UDPListen
	mc.OwnTransport = c.OwnTransport
}

// Factory starts a node as c says for one test and stops it when the
// test ends.
type Factory func(t *testing.T, c Config) media.Node

// nodeMaker is what a case calls: a node limited to maxParticipants in
// the port configuration under test.
type nodeMaker func(t *testing.T, maxParticipants int) media.Node

// portModes are the ways a node takes participants' media: a UDP port
// each, or one shared port, where every participant's packets go
// through one socket and one demultiplexer, on pion's transport or on
// the node's own.
var portModes = []struct {
	name, udpListen string
	own             bool
}{
	{"PortPerParticipant", "", false},
	{"OneUDPPort", "127.0.0.1:0", false},
	{"OwnTransport", "127.0.0.1:0", true},
}

// Run runs the suite against the nodes newNode makes, every case once
// with a port per participant and once with one UDP port. The two run
// side by side: the cases mostly wait for media, so the second pass adds
// little time.
func Run(t *testing.T, newNode Factory) {
	for _, mode := range portModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			newNode := func(t *testing.T, maxParticipants int) media.Node {
				return newNode(t, Config{MaxParticipants: maxParticipants, UDPListen: mode.udpListen, OwnTransport: mode.own})
			}
			t.Run("MediaOnTheConfiguredPorts", func(t *testing.T) { configuredPorts(t, newNode, mode.udpListen != "") })
			runCases(t, newNode)
		})
	}
}

// configuredPorts: the participants' media reaches the node on one port
// for all when the node has one, on a port each otherwise.
func configuredPorts(t *testing.T, newNode nodeMaker, shared bool) {
	node := newNode(t, 0)
	r := NewRoom(t)
	ps := []*Participant{r.Join(node, "a", Publish{Video: true}), r.Join(node, "b", Publish{Video: true})}
	WaitAllReceive(t, ps, 20, 20*time.Second)
	ports := map[uint16]bool{}
	for _, p := range ps {
		pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair: %v", p.Name, err)
		}
		ports[pair.Remote.Port] = true
	}
	if shared && len(ports) != 1 || !shared && len(ports) != len(ps) {
		t.Fatalf("node ports %v for %d participants; one for all: %v", ports, len(ps), shared)
	}
}

func runCases(t *testing.T, newNode nodeMaker) {
	tests := []struct {
		name string
		run  func(*testing.T, nodeMaker)
	}{
		{"ThreeParticipantsReceiveEachOthersTracks", threeParticipants},
		{"FullNodeRefuses", fullNodeRefuses},
		{"JoinAgainReplacesTheSession", joinAgainReplaces},
		{"NackAnsweredFromCache", nackAnswered},
		{"NackAnsweredToAskerOnly", nackAnsweredToAskerOnly},
		{"KeyframeRequestsThrottled", keyframeRequestsThrottled},
		{"NewSubscriberGetsKeyframe", newSubscriberGetsKeyframe},
		{"DeadSubscriberDoesNotSlowOthers", deadSubscriber},
		{"SimulcastLayerFollowsView", simulcastFollowsView},
		{"HiddenVideoPaused", hiddenVideoPaused},
		{"ActiveSpeaker", activeSpeaker},
		{"SenderReportsReachSubscribers", senderReports},
		{"PublisherLearnsItsRoundTrip", publisherRoundTrip},
		{"NodeAsksPublisherForLostPackets", nodeNacksPublisher},
		{"ScreenShareBesideSimulcast", screenShare},
		{"ScreenSharedMidSession", screenSharedMidSession},
		{"RecordConsult", recordConsult},
		{"RecordScreenShare", recordScreenShare},
		{"RecordingEndsWithRoom", recordingEndsWithRoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newNode) })
	}
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

func threeParticipants(t *testing.T, newNode nodeMaker) {
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

func fullNodeRefuses(t *testing.T, newNode nodeMaker) {
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

func joinAgainReplaces(t *testing.T, newNode nodeMaker) {
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
