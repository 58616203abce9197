package nodetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// Publish says what a test participant sends.
type Publish struct {
	Video     bool // one VP8 camera track
	Simulcast bool // the camera in three layers, rids q, h and f
	Screen    bool // a second VP8 track, stream id "screen", without simulcast
	Audio     bool // Opus with RFC 6464 audio levels
}

// picBase is where each simulcast layer's VP8 picture IDs start.
var picBase = [3]int{100, 9000, 30000}

// Rids are the simulcast layers a simulcast participant sends, lowest
// first; each packet's payload names its layer, so receivers can tell
// which one the node forwards.
var Rids = [3]string{"q", "h", "f"}

// Participant is a pion client in a room of a node under test.
type Participant struct {
	Name    string
	Session media.Participant

	t     testing.TB
	pc    *webrtc.PeerConnection
	quiet *atomic.Bool
	pub   Publish

	video  []*webrtc.TrackLocalStaticRTP // one, or one per rid
	vsend  *webrtc.RTPSender
	audio  *webrtc.TrackLocalStaticRTP
	screen *webrtc.TrackLocalStaticRTP
	ssend  *webrtc.RTPSender
	skip   atomic.Int32 // a camera sequence number not to send, -1 for none
	asend  *webrtc.RTPSender
	level  atomic.Int32                      // RFC 6464 level of the audio sent, 0 loudest
	wantKF [4]atomic.Bool                    // a keyframe was asked for, per layer (3: screen)
	plis   atomic.Int64                      // keyframe requests received
	sent   atomic.Int64                      // video packets sent (top layer when simulcast)
	srs    atomic.Int64                      // RTCP sender reports received
	rtts   atomic.Int64                      // reception reports of the camera that answer its sender reports
	remote sync.Map                          // stream id -> *webrtc.TrackRemote (video)
	drop   atomic.Pointer[func(uint16) bool] // received video packets to discard on purpose

	mu       sync.Mutex
	received map[string]*atomic.Int64 // video packets by stream id
	audioIn  map[string]*atomic.Int64 // audio packets by stream id
	logs     map[string][]Packet      // video packets by stream id, in arrival order
	closed   chan error
	speakers []string
	nacked   map[uint16]bool // camera packets the node asked for again

	sdpMu sync.Mutex // descriptions are applied one at a time, in order
}

// Packet is what a participant noted of one video packet it received.
type Packet struct {
	Seq      uint16
	TS       uint32
	SSRC     uint32
	Layer    byte // 'q', 'h', 'f', or 0 for a track without simulcast
	Keyframe bool // first packet of a keyframe
	// PictureID is the VP8 picture ID, -1 without one. The test sender
	// gives each simulcast layer its own sequence.
	PictureID int
}

const maxLog = 20000

// Answer implements media.Events.
func (p *Participant) Answer(sdp string) {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil && !p.quiet.Load() {
		p.t.Errorf("%s: remote answer: %v\n%s", p.Name, err, sdp)
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

// Speakers returns the speakers announced to p so far.
func (p *Participant) Speakers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.speakers...)
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
func Join(t testing.TB, node media.Node, room, name string, quiet *atomic.Bool) (*Participant, error) {
	t.Helper()
	return JoinWith(t, node, room, name, quiet, Publish{Video: true}, LoopbackSettings())
}

// JoinWith adds a participant that publishes what pub says, with its ICE
// confined by settings.
func JoinWith(t testing.TB, node media.Node, room, name string, quiet *atomic.Bool, pub Publish, settings webrtc.SettingEngine) (*Participant, error) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	api, err := ClientAPI(m, settings)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &Participant{t: t, Name: name, pc: pc, quiet: quiet, pub: pub, closed: make(chan error, 1),
		received: map[string]*atomic.Int64{}, audioIn: map[string]*atomic.Int64{}, logs: map[string][]Packet{}}
	p.level.Store(127)
	p.skip.Store(-1)
	p.nacked = map[uint16]bool{}
	t.Cleanup(func() { quiet.Store(true); pc.Close() }) // the test is over: late renegotiations may fail
	if err := p.addTracks(); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(p.receive)
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
		pc.Close()
		return nil, err
	}
	return p, nil
}

func (p *Participant) addTracks() error {
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}
	switch {
	case p.pub.Simulcast:
		for _, rid := range Rids {
			tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", p.Name, webrtc.WithRTPStreamID(rid))
			if err != nil {
				return err
			}
			p.video = append(p.video, tr)
		}
		s, err := p.pc.AddTrack(p.video[0])
		if err != nil {
			return err
		}
		for _, tr := range p.video[1:] {
			if err := s.AddEncoding(tr); err != nil {
				return err
			}
		}
		p.vsend = s
	case p.pub.Video:
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", p.Name)
		if err != nil {
			return err
		}
		p.video = append(p.video, tr)
		if p.vsend, err = p.pc.AddTrack(tr); err != nil {
			return err
		}
	}
	if p.pub.Screen {
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "screen", "screen")
		if err != nil {
			return err
		}
		p.screen = tr
		if p.ssend, err = p.pc.AddTrack(tr); err != nil {
			return err
		}
	}
	if !p.pub.Video && !p.pub.Simulcast && !p.pub.Audio && !p.pub.Screen {
		// A browser without camera or microphone offers to receive.
		_, err := p.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		return err
	}
	if p.pub.Audio {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", p.Name)
		if err != nil {
			return err
		}
		p.audio = tr
		if p.asend, err = p.pc.AddTrack(tr); err != nil {
			return err
		}
	}
	return nil
}

// receive counts and logs what p receives from the node.
func (p *Participant) receive(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	go func() { // ends when the connection closes
		for {
			pkts, _, err := receiver.ReadRTCP()
			if err != nil {
				return
			}
			for _, pk := range pkts {
				if _, ok := pk.(*rtcp.SenderReport); ok {
					p.srs.Add(1)
				}
			}
		}
	}()
	counter := &atomic.Int64{}
	stream := remote.StreamID()
	p.mu.Lock()
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		p.audioIn[stream] = counter
	} else {
		p.received[stream] = counter
		p.logs[stream] = nil
		p.remote.Store(stream, remote)
	}
	p.mu.Unlock()
	for {
		pkt, _, err := remote.ReadRTP()
		if err != nil {
			return
		}
		if remote.Kind() == webrtc.RTPCodecTypeAudio {
			counter.Add(1)
			continue
		}
		if drop := p.drop.Load(); drop != nil && (*drop)(pkt.SequenceNumber) {
			continue
		}
		counter.Add(1)
		e := notePacket(pkt)
		p.mu.Lock()
		if l := p.logs[stream]; len(l) < maxLog {
			p.logs[stream] = append(l, e)
		}
		p.mu.Unlock()
	}
}

// notePacket reads what the suite checks of a video packet the test
// senders made.
func notePacket(pkt *rtp.Packet) Packet {
	e := Packet{Seq: pkt.SequenceNumber, TS: pkt.Timestamp, SSRC: pkt.SSRC}
	e.PictureID = -1
	if b := pkt.Payload; len(b) >= 3 {
		d := 0
		if b[0]&0x80 != 0 && len(b) >= 7 && b[1]&0x80 != 0 && b[2]&0x80 != 0 {
			e.PictureID = int(b[2]&0x7f)<<8 | int(b[3])
			d = 3 // the VP8 header follows at d+1
		}
		e.Keyframe = b[0]&0x10 != 0 && b[d+1]&0x01 == 0
		e.Layer = b[d+2]
	}
	return e
}

// Log returns the video packets p received on stream, in arrival order.
func (p *Participant) Log(stream string) []Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Packet(nil), p.logs[stream]...)
}

// From returns how many video packets p received on stream.
func (p *Participant) From(stream string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.received[stream]; c != nil {
		return c.Load()
	}
	return 0
}

// AudioFrom returns how many audio packets p received on stream.
func (p *Participant) AudioFrom(stream string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.audioIn[stream]; c != nil {
		return c.Load()
	}
	return 0
}

// SetLevel sets the RFC 6464 level of the audio p sends: 0 is the
// loudest, 127 silence.
func (p *Participant) SetLevel(level int) { p.level.Store(int32(level)) }

// PLIs returns how many keyframe requests the node sent p.
func (p *Participant) PLIs() int64 { return p.plis.Load() }

// RoundTripReports returns how many reception reports of p's camera the
// node sent that name p's last sender report and the delay since it.
func (p *Participant) RoundTripReports() int64 { return p.rtts.Load() }

// SenderReports returns how many RTCP sender reports p received.
func (p *Participant) SenderReports() int64 { return p.srs.Load() }

// Sent returns how many video packets p sent (of its top layer).
func (p *Participant) Sent() int64 { return p.sent.Load() }

// RequestKeyframe sends the node a PLI for the video p receives on
// stream, as a browser does when it cannot decode.
func (p *Participant) RequestKeyframe(stream string) error {
	r, ok := p.remote.Load(stream)
	if !ok {
		return errors.New("no track on " + stream)
	}
	return p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(r.(*webrtc.TrackRemote).SSRC())}})
}

// Nack asks the node again for the packets seqs of the video p receives
// on stream.
func (p *Participant) Nack(stream string, seqs ...uint16) error {
	r, ok := p.remote.Load(stream)
	if !ok {
		return errors.New("no track on " + stream)
	}
	return p.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
		MediaSSRC: uint32(r.(*webrtc.TrackRemote).SSRC()),
		Nacks:     rtcp.NackPairsFromSequenceNumbers(seqs),
	}})
}

// Drop makes p discard received video packets for which f is true, as if
// the network had lost them.
func (p *Participant) Drop(f func(seq uint16) bool) { p.drop.Store(&f) }

// CloseAbruptly closes p's connection without telling the node, like a
// browser tab that crashed.
func (p *Participant) CloseAbruptly() { _ = p.pc.Close() }

// PeerConnection returns p's pion connection, for tests that look at the
// negotiated candidates.
func (p *Participant) PeerConnection() *webrtc.PeerConnection { return p.pc }
