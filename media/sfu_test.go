package media

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func loopbackSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// participant is a pion client that publishes one video track and counts
// what it receives from each other participant.
type participant struct {
	t       *testing.T
	name    string
	pc      *webrtc.PeerConnection
	session *Session
	track   *webrtc.TrackLocalStaticRTP

	mu       sync.Mutex
	received map[string]*atomic.Int64 // by stream id

	sdpMu sync.Mutex // descriptions are applied one at a time, in order
	quiet *atomic.Bool
}

// Answer applies the SFU's answer to our offer.
func (p *participant) Answer(sdp string) {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil && !p.quiet.Load() {
		p.t.Errorf("%s: remote answer: %v", p.name, err)
	}
}

// Offer and Candidate implement Signaler for the SFU's side.
func (p *participant) Offer(sdp string) {
	go func() {
		p.sdpMu.Lock()
		defer p.sdpMu.Unlock()
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			if !p.quiet.Load() {
				p.t.Errorf("%s: remote offer: %v", p.name, err)
			}
			return
		}
		answer, err := p.pc.CreateAnswer(nil)
		if err == nil {
			err = p.pc.SetLocalDescription(answer)
		}
		if err == nil {
			err = p.session.HandleAnswer(p.pc.LocalDescription().SDP)
		}
		if err != nil && !p.quiet.Load() {
			p.t.Errorf("%s: answer: %v", p.name, err)
		}
	}()
}

func join(t *testing.T, sfu *SFU, name string, quiet *atomic.Bool) *participant {
	t.Helper()
	m := &webrtc.MediaEngine{}
	m.RegisterDefaultCodecs()
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(loopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &participant{t: t, name: name, pc: pc, received: map[string]*atomic.Int64{}, quiet: quiet}
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
	p.session, err = sfu.Join("c_1", name, p)
	if err != nil {
		t.Fatal(err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			if err := p.session.AddCandidate(c.ToJSON()); err != nil && !quiet.Load() {
				t.Errorf("%s: sfu candidate: %v", name, err)
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
	if err := p.session.HandleOffer(pc.LocalDescription().SDP); err != nil {
		t.Fatal(err)
	}
	return p
}

// send writes synthetic VP8 packets until stop is closed.
func (p *participant) send(stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Go(func() {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: make([]byte, 600)}
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			pkt.SequenceNumber, pkt.Timestamp = seq, uint32(seq)*900
			if err := p.track.WriteRTP(pkt); err != nil && err != io.ErrClosedPipe {
				return
			}
		}
	})
}

func (p *participant) from(stream string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.received[stream]; c != nil {
		return c.Load()
	}
	return 0
}

func TestThreeParticipantsReceiveEachOthersTracks(t *testing.T) {
	sfu, err := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Settings: loopbackSettings()})
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	quiet := &atomic.Bool{} // shutting down: late renegotiations may fail
	defer func() { quiet.Store(true); close(stop); wg.Wait() }()

	names := []string{"clinician", "patient", "interpreter"}
	var ps []*participant
	for _, n := range names {
		p := join(t, sfu, n, quiet)
		p.send(stop, &wg)
		ps = append(ps, p)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := ""
		for _, p := range ps {
			for _, other := range names {
				if other != p.name && p.from(other+"/"+other) < 20 {
					missing = p.name + " from " + other
				}
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no media %s", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rooms, n := sfu.Load(); rooms != 1 || n != 3 {
		t.Fatalf("Load = %d rooms, %d participants", rooms, n)
	}

	// When one leaves, the others stop receiving from it and keep the rest.
	ps[2].session.Close()
	if _, n := sfu.Load(); n != 2 {
		t.Fatalf("participants after a leave = %d", n)
	}
}

func TestNodeRefusesWhenFull(t *testing.T) {
	sfu, err := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Settings: loopbackSettings(), MaxParticipants: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	quiet := &atomic.Bool{}
	defer quiet.Store(true)
	join(t, sfu, "one", quiet)
	if _, err := sfu.Join("c_1", "two", &participant{quiet: quiet}); err != ErrFull {
		t.Fatalf("second join on a full node: %v", err)
	}
}
