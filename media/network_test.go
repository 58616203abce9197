package media_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

func newSFU(t *testing.T, cfg media.Config) *media.SFU {
	t.Helper()
	cfg.Log = testLog()
	sfu, err := media.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sfu.Close)
	return sfu
}

func tcpSettings() webrtc.SettingEngine {
	se := nodetest.LoopbackSettings()
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	return se
}

// TestSharedPortsCarryMedia: participants reach a node through its one
// UDP port, and one of them through its ICE-TCP port only, also when the
// node's settings name no network types (pion's default, UDP alone, left
// the ICE-TCP port unannounced).
func TestSharedPortsCarryMedia(t *testing.T) {
	loopback := func() webrtc.SettingEngine {
		var se webrtc.SettingEngine
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		return se
	}
	explicit := loopback()
	explicit.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	for _, tt := range []struct {
		name string
		se   webrtc.SettingEngine
	}{{"UDP and TCP asked for", explicit}, {"default network types", loopback()}} {
		t.Run(tt.name, func(t *testing.T) { sharedPortsCarryMedia(t, tt.se) })
	}
}

func sharedPortsCarryMedia(t *testing.T, se webrtc.SettingEngine) {
	sfu := newSFU(t, media.Config{Settings: se, UDPListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0"})
	var udpPort, tcpPort int
	for _, a := range sfu.Addrs() {
		switch a := a.(type) {
		case *net.UDPAddr:
			udpPort = a.Port
		case *net.TCPAddr:
			tcpPort = a.Port
		}
	}
	if udpPort == 0 || tcpPort == 0 {
		t.Fatalf("Addrs() = %v, want a UDP and a TCP address", sfu.Addrs())
	}
	r := nodetest.NewRoom(t)
	a := r.Join(sfu, "a", nodetest.Publish{Video: true})
	b := r.Join(sfu, "b", nodetest.Publish{Video: true})
	c := r.JoinWith(sfu, "c", nodetest.Publish{Video: true}, tcpSettings())
	nodetest.WaitAllReceive(t, []*nodetest.Participant{a, b, c}, 20, 20*time.Second)

	for _, p := range []*nodetest.Participant{a, b} {
		pair, err := p.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", p.Name, err)
		}
		if pair.Remote.Protocol != webrtc.ICEProtocolUDP || int(pair.Remote.Port) != udpPort {
			t.Errorf("%s reaches the node at %s %d, want UDP %d", p.Name, pair.Remote.Protocol, pair.Remote.Port, udpPort)
		}
	}
	pair, err := c.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("c: no selected pair: %v", err)
	}
	if pair.Remote.Protocol != webrtc.ICEProtocolTCP || int(pair.Remote.Port) != tcpPort {
		t.Errorf("c reaches the node at %s %d, want TCP %d", pair.Remote.Protocol, pair.Remote.Port, tcpPort)
	}
}

// TestPublicIPsAdvertised: behind a 1:1 NAT the node's descriptions name
// the public address instead of its own.
func TestPublicIPsAdvertised(t *testing.T) {
	sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), UDPListen: "127.0.0.1:0", PublicIPs: []string{"203.0.113.7"}})
	r := nodetest.NewRoom(t)
	p := r.Join(sfu, "a", nodetest.Publish{Video: true})
	eventually.True(t, 5*time.Second, "the node's answer", func() bool { return p.PeerConnection().RemoteDescription() != nil })
	sdp := p.PeerConnection().RemoteDescription().SDP
	port := sfu.Addrs()[0].(*net.UDPAddr).Port
	if !strings.Contains(sdp, fmt.Sprintf("203.0.113.7 %d typ host", port)) || strings.Contains(sdp, "127.0.0.1") {
		t.Fatalf("answer does not advertise only the public address:\n%s", sdp)
	}
	if _, err := media.New(media.Config{PublicIPs: []string{"not-an-ip"}}); err == nil {
		t.Fatal("New accepted a public IP that is not an address")
	}
}

// TestListenersClosed: Close frees the node's ports.
func TestListenersClosed(t *testing.T) {
	sfu, err := media.New(media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings(), UDPListen: "127.0.0.1:0", TCPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addrs := sfu.Addrs()
	sfu.Close()
	for _, a := range addrs {
		var err error
		switch a := a.(type) {
		case *net.UDPAddr:
			var c *net.UDPConn
			if c, err = net.ListenUDP("udp", a); err == nil {
				c.Close()
			}
		case *net.TCPAddr:
			var l *net.TCPListener
			if l, err = net.ListenTCP("tcp", a); err == nil {
				l.Close()
			}
		}
		if err != nil {
			t.Errorf("%s still in use after Close: %v", a, err)
		}
	}
	if _, err := sfu.Join(t.Context(), "c_1", "a", nil); !errors.Is(err, media.ErrUnavailable) {
		t.Errorf("Join after Close: %v, want ErrUnavailable", err)
	}
}

// TestEveryAddressPortCarriesMedia: a node listening on every address
// (":7882", as cmd/sfu does by default) has a batching socket per
// address, and media flows through them.
func TestEveryAddressPortCarriesMedia(t *testing.T) {
	anyInterface := func() webrtc.SettingEngine {
		var se webrtc.SettingEngine
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		return se
	}
	sfu := newSFU(t, media.Config{Settings: anyInterface(), UDPListen: ":0"})
	ports := map[int]bool{}
	for _, a := range sfu.Addrs() {
		if u, ok := a.(*net.UDPAddr); ok && u.IP.To4() != nil {
			ports[u.Port] = true
		}
	}
	if len(ports) == 0 {
		t.Skipf("no IPv4 address but loopback to listen on: %v", sfu.Addrs())
	}
	r := nodetest.NewRoom(t)
	a := r.JoinWith(sfu, "a", nodetest.Publish{Video: true}, anyInterface())
	b := r.JoinWith(sfu, "b", nodetest.Publish{Video: true}, anyInterface())
	nodetest.WaitAllReceive(t, []*nodetest.Participant{a, b}, 20, 20*time.Second)
	for _, p := range []*nodetest.Participant{a, b} {
		pair, err := p.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", p.Name, err)
		}
		if !ports[int(pair.Remote.Port)] {
			t.Errorf("%s reaches the node on port %d, not one of its shared ports %v", p.Name, pair.Remote.Port, ports)
		}
	}
}
