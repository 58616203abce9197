package media

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/pion/webrtc/v4"
)

// TestConnWriterWritesEveryTrack: one writer writes every track of a
// connection, and a track stopped on it lets go of its queue and leaves
// the writer while the others go on.
func TestConnWriterWritesEveryTrack(t *testing.T) {
	h := newHarness(t, kindVideo)
	cw := newConnWriter(h.sfu, nil)
	a, b := &recorder{}, &recorder{}
	da, db := h.subscribe(t, a, false), h.subscribe(t, b, false)
	for _, d := range []*downTrack{da, db} {
		d.w = cw
		cw.add(d)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { cw.run(done) })
	defer func() { close(done); wg.Wait() }()

	const first = 90
	for range first {
		h.forward(h.packet())
	}
	eventually.True(t, 10*time.Second, "both tracks written", func() bool { return a.count() == first && b.count() == first })
	db.stop()
	for range first {
		h.forward(h.packet()) // db still offered: its publication was not told yet
	}
	eventually.True(t, 10*time.Second, "the other track written on", func() bool { return a.count() == 2*first })
	eventually.True(t, 10*time.Second, "the stopped track released", func() bool {
		cw.mu.Lock()
		defer cw.mu.Unlock()
		return len(cw.downs) == 1 && cw.downs[0] == da
	})
	// A pass under way when the track stopped may finish its burst.
	if n := b.count(); n > first+writeBurst {
		t.Errorf("the stopped track got %d packets, want the %d before it stopped", n, first)
	}
	checkSeq(t, "a", a, false)
}

// TestPairRemote: the writer holds bursts for UDP pairs to an IP address
// only.
func TestPairRemote(t *testing.T) {
	host := func(proto webrtc.ICEProtocol, addr string, port uint16) *webrtc.ICECandidate {
		return &webrtc.ICECandidate{Protocol: proto, Address: addr, Port: port, Typ: webrtc.ICECandidateTypeHost}
	}
	relay := &webrtc.ICECandidate{Protocol: webrtc.ICEProtocolUDP, Address: "192.0.2.1", Port: 3478, Typ: webrtc.ICECandidateTypeRelay}
	udp := webrtc.ICEProtocolUDP
	for _, tt := range []struct {
		name string
		pair *webrtc.ICECandidatePair
		want netip.AddrPort
	}{
		{"no pair", nil, netip.AddrPort{}},
		{"UDP, IPv4", webrtc.NewICECandidatePair(host(udp, "10.0.0.1", 5000), host(udp, "198.51.100.7", 61000)), netip.MustParseAddrPort("198.51.100.7:61000")},
		{"UDP, IPv6", webrtc.NewICECandidatePair(host(udp, "::1", 5000), host(udp, "2001:db8::7", 61000)), netip.MustParseAddrPort("[2001:db8::7]:61000")},
		{"TCP", webrtc.NewICECandidatePair(host(webrtc.ICEProtocolTCP, "10.0.0.1", 5000), host(webrtc.ICEProtocolTCP, "198.51.100.7", 9)), netip.AddrPort{}},
		{"mDNS name", webrtc.NewICECandidatePair(host(udp, "10.0.0.1", 5000), host(udp, "0b7b1f3e.local", 61000)), netip.AddrPort{}},
		{"through the node's relay client", webrtc.NewICECandidatePair(relay, host(udp, "198.51.100.7", 61000)), netip.AddrPort{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := pairRemote(tt.pair); got != tt.want {
				t.Errorf("pairRemote = %v, want %v", got, tt.want)
			}
		})
	}
}
