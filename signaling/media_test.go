package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/internal/testpki"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
	"github.com/openconsult/openconsult/sfulink"
)

// nodeKinds are the two ways signal reaches a media node: in process, and
// over the mutual-TLS link to a node pool. Each returns the node signal
// uses and the SFU behind it.
var nodeKinds = []struct {
	name  string
	start func(t *testing.T, maxParticipants int) (MediaNode, *media.SFU)
}{
	{"in-process", func(t *testing.T, maxParticipants int) (MediaNode, *media.SFU) {
		sfu := newSFU(t, maxParticipants)
		return sfu, sfu
	}},
	{"remote", func(t *testing.T, maxParticipants int) (MediaNode, *media.SFU) {
		sfu := newSFU(t, maxParticipants)
		link := testpki.NewLink(t)
		serverTLS, err := sfulink.ServerTLS(link.NodeCert, link.NodeKey, link.CA.File)
		if err != nil {
			t.Fatal(err)
		}
		srv := sfulink.NewServer(sfulink.ServerConfig{Node: sfu, Log: quietLog()})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: srv, TLSConfig: serverTLS, ErrorLog: slog.NewLogLogger(quietLog().Handler(), slog.LevelDebug)}
		served := make(chan struct{})
		go func() { defer close(served); _ = hs.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { hs.Close(); srv.Close(); <-served })
		clientTLS, err := sfulink.ClientTLS(link.SignalCert, link.SignalKey, link.CA.File)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := sfulink.NewPool(t.Context(), sfulink.PoolConfig{Nodes: []string{"wss://" + ln.Addr().String() + "/"}, TLS: clientTLS, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool, sfu
	}},
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newSFU(t *testing.T, maxParticipants int) *media.SFU {
	t.Helper()
	sfu, err := media.New(media.Config{Log: quietLog(), Settings: nodetest.LoopbackSettings(), MaxParticipants: maxParticipants})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sfu.Close)
	return sfu
}

// eachNode runs test with a fixture whose consults move to each kind of
// media node.
func eachNode(t *testing.T, maxParticipants int, test func(t *testing.T, f *fixture, sfu *media.SFU)) {
	for _, kind := range nodeKinds {
		t.Run(kind.name, func(t *testing.T) {
			node, sfu := kind.start(t, maxParticipants)
			f := newFixture()
			f.hub.deps.Media = node
			test(t, f, sfu)
		})
	}
}

func TestThirdAdmissionMovesTheConsultToTheMediaNode(t *testing.T) {
	eachNode(t, 0, thirdAdmissionMoves)
}

func thirdAdmissionMoves(t *testing.T, f *fixture, _ *media.SFU) {
	r, hm, host := f.join(t, "u_doc", true)
	_, pm, ptab := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	if a := ptab.last("admitted"); a == nil || a["route"] != RouteP2P {
		t.Fatalf("a two-member consult is not peer to peer: %v", a)
	}
	for _, raw := range [][]byte{msg("sfu-join"), msg("offer", "to", SFUPeer, "sdp", sdp)} {
		r.Handle(pm, raw)
		if code := errCode(ptab); code != "not-routed" {
			t.Fatalf("media node message in a peer-to-peer consult: error %q, want not-routed", code)
		}
	}
	host.take()
	ptab.take()

	_, _, itab := f.join(t, "g_int", false)
	r.Handle(hm, msg("admit", "member", "g_int"))
	for name, tb := range map[string]*tab{"host": host, "patient": ptab} {
		if m := tb.last("route"); m == nil || m["route"] != RouteSFU || m["restart"] != nil {
			t.Errorf("%s was not moved: %v", name, m)
		}
	}
	if a := itab.last("admitted"); a == nil || a["route"] != RouteSFU || a["node"] != nil {
		t.Fatalf("the third member was not admitted onto the node, without a node session yet: %v", a)
	}

	// A member leaving does not move the consult back.
	r.Handle(pm, msg("leave"))
	_, _, again := f.join(t, "u_doc", true)
	if a := again.last("admitted"); a["route"] != RouteSFU {
		t.Fatalf("after a leave the consult went back to %v", a["route"])
	}
}

func TestMediaNodeMessagesAreChecked(t *testing.T) {
	f := newFixture()
	f.hub.deps.Media = newSFU(t, 0)
	f.hub.deps.SFUMinParticipants = 2
	r, hm, host := f.join(t, "u_doc", true)
	f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"offer before sfu-join", msg("offer", "to", SFUPeer, "sdp", sdp), "no-member"},
		{"view before sfu-join", msg("view", "member", "g_pat", "width", 320, "height", 180), "no-member"},
		{"view of nobody", msg("view", "member", "g_nobody", "width", 320, "height", 180), "no-member"},
		{"view negative", msg("view", "member", "g_pat", "width", -1, "height", 180), "bad-field"},
		{"view huge", msg("view", "member", "g_pat", "width", 100000, "height", 180), "bad-field"},
		{"offer without fingerprint", msg("offer", "to", SFUPeer, "sdp", "v=0\r\n"), "bad-sdp"},
		{"candidate not an object", msg("candidate", "to", SFUPeer, "candidate", "x"), "bad-field"},
		{"first sfu-join", msg("sfu-join"), ""},
		{"sfu-join again at once", msg("sfu-join"), "rate-limited"},
	}
	for _, tt := range tests {
		host.take()
		r.Handle(hm, tt.raw)
		if code := errCode(host); code != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, code, tt.want)
		}
	}
}

// pionTab is a member's tab driven by a pion peer connection that follows
// the protocol: sfu-join, an offer to the node, answers to its offers.
type pionTab struct {
	t      *testing.T
	r      *Room
	m      *Member
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticRTP
	quiet  *atomic.Bool
	sdpMu  sync.Mutex
	mu     sync.Mutex
	got    map[string]*atomic.Int64 // packets by stream id
	msgs   []map[string]any
	closed bool
	// fromNode keeps the node's descriptions in the order signal sent
	// them, as a browser's message handler does: an answer applied after
	// the renegotiation offer that follows it would be glare.
	fromNode chan map[string]any
}

// newPionTab returns a tab whose node messages are applied in order by a
// goroutine that ends with the test.
func newPionTab(t *testing.T, quiet *atomic.Bool) *pionTab {
	p := &pionTab{t: t, quiet: quiet, got: map[string]*atomic.Int64{}, fromNode: make(chan map[string]any, 256)}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case m := <-p.fromNode:
				p.onNode(m)
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return p
}

func (p *pionTab) Send(b []byte) bool {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	p.mu.Lock()
	p.msgs = append(p.msgs, m)
	p.mu.Unlock()
	if m["from"] != SFUPeer {
		return true
	}
	// Send runs under the room's lock; the reply goes through Handle.
	select {
	case p.fromNode <- m:
		return true
	default:
		return false // a tab that cannot keep up is dropped, as in production
	}
}

func (p *pionTab) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func (p *pionTab) seen(typ string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, m := range p.msgs {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

func (p *pionTab) onNode(m map[string]any) {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	typ := webrtc.SDPTypeAnswer
	if m["type"] == "offer" {
		typ = webrtc.SDPTypeOffer
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: m["sdp"].(string)}); err != nil {
		if !p.quiet.Load() {
			p.t.Errorf("%s: node %s: %v", p.m.ID, m["type"], err)
		}
		return
	}
	if typ == webrtc.SDPTypeOffer {
		answer, err := p.pc.CreateAnswer(nil)
		if err == nil {
			err = p.pc.SetLocalDescription(answer)
		}
		if err != nil {
			if !p.quiet.Load() {
				p.t.Errorf("%s: answer the node: %v", p.m.ID, err)
			}
			return
		}
		p.r.Handle(p.m, msg("answer", "to", SFUPeer, "sdp", p.pc.LocalDescription().SDP))
	}
}

// connect opens a new peer connection to the node, as a browser does on
// `route`: sfu-join, then its offer.
func (p *pionTab) connect() {
	p.t.Helper()
	api := webrtc.NewAPI(webrtc.WithSettingEngine(nodetest.LoopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { pc.Close() })
	track, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam")
	if _, err := pc.AddTrack(track); err != nil {
		p.t.Fatal(err)
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := &atomic.Int64{}
		p.mu.Lock()
		p.got[remote.StreamID()] = n
		p.mu.Unlock()
		buf := make([]byte, 1500)
		for {
			if _, _, err := remote.Read(buf); err != nil {
				return
			}
			n.Add(1)
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.r.Handle(p.m, msg("candidate", "to", SFUPeer, "candidate", c.ToJSON()))
		}
	})
	p.sdpMu.Lock()
	old := p.pc
	p.pc, p.track = pc, track
	p.r.Handle(p.m, msg("sfu-join"))
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	p.sdpMu.Unlock()
	if err != nil {
		p.t.Fatal(err)
	}
	if old != nil {
		old.Close()
	}
	p.r.Handle(p.m, msg("offer", "to", SFUPeer, "sdp", pc.LocalDescription().SDP))
}

func (p *pionTab) send(stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Go(func() {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96}, Payload: make([]byte, 400)}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pkt.SequenceNumber, pkt.Timestamp = seq, uint32(seq)*900
			p.sdpMu.Lock()
			track := p.track
			p.sdpMu.Unlock()
			_ = track.WriteRTP(pkt)
		}
	})
}

func (p *pionTab) from(member string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.got[member+"/cam"]; n != nil {
		return n.Load()
	}
	return 0
}

func TestMembersExchangeMediaThroughTheNodeAndReconnectWhenItEnds(t *testing.T) {
	eachNode(t, 0, exchangeAndReconnect)
}

func exchangeAndReconnect(t *testing.T, f *fixture, sfu *media.SFU) {
	quiet := &atomic.Bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { quiet.Store(true); close(stop); wg.Wait() }()

	ids := []string{"u_doc", "g_pat", "g_int"}
	tabs := map[string]*pionTab{}
	var room *Room
	var host *Member
	for i, id := range ids {
		pt := newPionTab(t, quiet)
		r, m, err := f.hub.Join("c_1", Participant{ID: id, Name: id, Kind: "guest", Host: i == 0}, pt)
		if err != nil {
			t.Fatal(err)
		}
		pt.r, pt.m = r, m
		tabs[id] = pt
		if i == 0 {
			room, host = r, m
		} else {
			room.Handle(host, msg("admit", "member", id))
		}
	}
	for _, id := range ids {
		if len(tabs[id].seen("route")) == 0 && tabs[id].seen("admitted")[0]["route"] != RouteSFU {
			t.Fatalf("%s was not told to move", id)
		}
		tabs[id].connect()
		tabs[id].send(stop, &wg)
	}
	allReceive := func(n int64) func() bool {
		return func() bool {
			for _, a := range ids {
				for _, b := range ids {
					if a != b && tabs[a].from(b) < n {
						return false
					}
				}
			}
			return true
		}
	}
	eventually.True(t, 20*time.Second, "media between all three through the node", allReceive(20))

	// The interpreter's session ends on the node's side (as when a node is
	// lost): its tab is told to reconnect, and does.
	quiet.Store(true)
	var ended *nodeSession
	room.mu.Lock()
	link := room.members["g_int"].media
	room.mu.Unlock()
	done := make(chan struct{})
	if err := link.enqueue(func(context.Context) { ended = link.session; close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
	ended.Closed(errors.Join(media.ErrUnavailable, errors.New("node lost")))
	eventually.True(t, 20*time.Second, "a restart route", func() bool {
		for _, m := range tabs["g_int"].seen("route") {
			if m["restart"] == true {
				return true
			}
		}
		return false
	})
	quiet.Store(false)
	before := tabs["g_pat"].from("g_int")
	room.mu.Lock()
	f.clock = f.clock.Add(2 * sfuJoinInterval)
	room.mu.Unlock()
	tabs["g_int"].connect()
	eventually.True(t, 20*time.Second, "media again after the reconnection", func() bool {
		return tabs["g_pat"].from("g_int") > before+20 && tabs["g_int"].from("u_doc") > 20
	})

	// A tab that reconnects is told its node session is up, so that it
	// keeps its connection to the node.
	quiet.Store(true)
	_, _, again := f.join(t, "u_doc", true)
	if a := again.last("admitted"); a == nil || a["node"] != true {
		t.Fatalf("admitted after a reconnection with a node session = %v, want node true", a)
	}

	// Leaving ends the member's node session.
	quiet.Store(true)
	room.Handle(room.members["g_pat"], msg("leave"))
	eventually.True(t, 20*time.Second, "the node to drop the member who left", func() bool { return sfu.Load().Participants == 2 })
}

func TestFullNodeLeavesMembersPeerToPeer(t *testing.T) {
	eachNode(t, 1, fullNodeRefuses)
}

func fullNodeRefuses(t *testing.T, f *fixture, _ *media.SFU) {
	f.hub.deps.SFUMinParticipants = 2
	quiet := &atomic.Bool{}
	defer quiet.Store(true)
	var tabs []*pionTab
	r, hm, _ := f.join(t, "u_doc", true)
	for _, id := range []string{"u_doc", "g_pat"} {
		pt := newPionTab(t, quiet)
		rr, m, err := f.hub.Join("c_1", Participant{ID: id, Name: id, Kind: "guest", Host: id == "u_doc"}, pt)
		if err != nil {
			t.Fatal(err)
		}
		pt.r, pt.m = rr, m
		tabs = append(tabs, pt)
		if id != "u_doc" {
			r.Handle(hm, msg("admit", "member", id))
		}
	}
	for _, pt := range tabs {
		pt.connect()
	}
	eventually.True(t, 20*time.Second, "media-unavailable for the member the full node refused", func() bool {
		for _, pt := range tabs {
			for _, e := range pt.seen("error") {
				if e["code"] == ErrMediaUnavailable.Code {
					return true
				}
			}
		}
		return false
	})
}

func TestHubStopsMediaLinksWhenItStops(t *testing.T) {
	eachNode(t, 0, hubStopsLinks)
}

func hubStopsLinks(t *testing.T, f *fixture, sfu *media.SFU) {
	f.hub.deps.SFUMinParticipants = 2
	quiet := &atomic.Bool{}
	defer quiet.Store(true)
	r, hm, _ := f.join(t, "u_doc", true)
	pt := newPionTab(t, quiet)
	_, m, _ := f.hub.Join("c_1", Participant{ID: "g_pat", Name: "p", Kind: "guest"}, pt)
	pt.r, pt.m = r, m
	r.Handle(hm, msg("admit", "member", "g_pat"))
	pt.connect()
	eventually.True(t, 20*time.Second, "the node session", func() bool { return sfu.Load().Participants == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { f.hub.Run(ctx); close(ran) }()
	cancel()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not stop its media links")
	}
	// A remote node hears of the close a moment later.
	eventually.True(t, 20*time.Second, "the node sessions to end with the hub", func() bool { return sfu.Load().Participants == 0 })
}
