package nodetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
)

// StartScreen has p share a screen mid-session on a section of its own,
// added by a renegotiation from p's side, as a browser without a camera
// does; the room sends its packets (stream id "screen") until the test
// ends.
func (p *Participant) StartScreen(r *Room) error {
	if p.screen == nil {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "screen", "screen")
		if err != nil {
			return err
		}
		p.screen = tr
		p.wantKF[3].Store(true)
		r.wg.Go(func() { p.sendScreen(r.stop) })
	}
	t, err := p.pc.AddTransceiverFromTrack(p.screen, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return fmt.Errorf("screen section: %w", err)
	}
	s := t.Sender()
	p.ssend = s
	go p.readRTCP(func() ([]rtcp.Packet, error) { pk, _, err := s.ReadRTCP(); return pk, err }, 3) // ends with the sender
	return p.renegotiate()
}

// StopScreen stops the share: the section goes back to receiving only,
// in a renegotiation from p's side, as a browser's does.
func (p *Participant) StopScreen() error {
	if err := p.pc.RemoveTrack(p.ssend); err != nil {
		return fmt.Errorf("stop screen: %w", err)
	}
	return p.renegotiate()
}

// StopReceiving stops the section on which p receives stream, and offers
// the change as a browser does when its page stops a transceiver: the
// section with port 0 (pion writes port 9 and a=inactive). The node may
// send the stream again on another section.
func (p *Participant) StopReceiving(stream string) error {
	p.sdpMu.Lock()
	var found *webrtc.RTPTransceiver
	for _, tr := range p.pc.GetTransceivers() {
		if r := tr.Receiver(); r != nil && r.Track() != nil && r.Track().StreamID() == stream {
			found = tr
		}
	}
	p.sdpMu.Unlock()
	if found == nil {
		return fmt.Errorf("stop receiving: no section receives %s", stream)
	}
	if err := found.Stop(); err != nil {
		return fmt.Errorf("stop receiving: %w", err)
	}
	return p.renegotiateWith(func(offer string) string {
		return stoppedPortZero(offer, found.Mid())
	})
}

// stoppedPortZero writes port 0 on the m-line of section mid.
func stoppedPortZero(offer, mid string) string {
	sections := strings.Split(offer, "\r\nm=")
	for i, s := range sections {
		if i > 0 && strings.Contains(s, "\r\na=mid:"+mid+"\r\n") {
			kind, rest, _ := strings.Cut(s, " ")
			_, rest, _ = strings.Cut(rest, " ")
			sections[i] = kind + " 0 " + rest
		}
	}
	return strings.Join(sections, "\r\nm=")
}

// renegotiate sends the node a new offer of p's once the node has
// answered the last one, as a browser queues a negotiation it needs while
// an offer of its own is outstanding.
func (p *Participant) renegotiate() error {
	return p.renegotiateWith(func(offer string) string { return offer })
}

// renegotiateWith is renegotiate with the offer sent as edit makes it.
func (p *Participant) renegotiateWith(edit func(string) string) error {
	eventually.True(p.t, 20*time.Second, p.Name+": the node's answer to the last offer", func() bool {
		p.sdpMu.Lock()
		defer p.sdpMu.Unlock()
		return p.pc.SignalingState() == webrtc.SignalingStateStable
	})
	p.sdpMu.Lock()
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(offer)
	}
	p.sdpMu.Unlock()
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	return p.Session.Offer(edit(p.pc.LocalDescription().SDP))
}

// offered reports whether the node's description last applied by p
// carries stream.
func (p *Participant) offered(stream string) bool {
	p.sdpMu.Lock()
	defer p.sdpMu.Unlock()
	d := p.pc.CurrentRemoteDescription()
	return d != nil && strings.Contains(d.SDP, "a=msid:"+stream+" ")
}

// screenSharedMidSession: a member who publishes only audio starts
// sharing a screen; the node takes the new publication and forwards it to
// the others, ends it when the section goes back to receiving only (the
// others' offer no longer carries it), and takes it again on a new share.
func screenSharedMidSession(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Audio: true})
	sub := r.Join(node, "sub", Publish{Video: true})
	eventually.True(t, 20*time.Second, "the sharer's audio and the other's camera", func() bool {
		return sub.AudioFrom("pub/pub") > 20 && pub.From("sub/sub") > 20
	})
	const stream = "pub/screen"
	var before uint32 // the SSRC the first share arrived with
	for share := 1; share <= 2; share++ {
		if err := pub.StartScreen(r); err != nil {
			t.Fatalf("share %d: %v", share, err)
		}
		eventually.True(t, 20*time.Second, fmt.Sprintf("share %d arrives", share), func() bool {
			n := 0
			for _, p := range sub.Log(stream) {
				if p.SSRC != before {
					n++
				}
			}
			return sub.offered(stream) && n > 30
		})
		log := sub.Log(stream)
		before = log[len(log)-1].SSRC
		if err := pub.StopScreen(); err != nil {
			t.Fatalf("share %d: %v", share, err)
		}
		eventually.True(t, 20*time.Second, fmt.Sprintf("share %d leaves the other's description", share), func() bool {
			return !sub.offered(stream)
		})
	}
	if pub.From("sub/sub") == 0 || sub.AudioFrom("pub/pub") == 0 {
		t.Fatal("the camera and the audio stopped")
	}
}

// recordScreenShare: a screen a member without a camera shares while the
// consult is recorded is recorded as a track of its own from a keyframe
// on, ends in the recording when the share stops, and a second share is
// recorded again as a new track; the member's audio goes on throughout.
func recordScreenShare(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Audio: true})
	sub := r.Join(node, "sub", Publish{Video: true, Audio: true})
	eventually.True(t, 20*time.Second, "the sharer's audio and the other's camera", func() bool {
		return sub.AudioFrom("pub/pub") > 20 && pub.From("sub/sub") > 20
	})
	_, sink := startRecording(t, node)
	audio := recordedFlows(t, sink, "pub/audio", webrtc.RTPCodecTypeAudio, webrtc.MimeTypeOpus, 25)
	var shares []*RecordedTrack
	for share := 1; share <= 2; share++ {
		if err := pub.StartScreen(r); err != nil {
			t.Fatalf("share %d: %v", share, err)
		}
		tr := recordedFlows(t, sink, "pub/screen", webrtc.RTPCodecTypeVideo, webrtc.MimeTypeVP8, 30)
		if slices.Contains(shares, tr) {
			t.Fatalf("share %d recorded on the track of the share before", share)
		}
		eventually.True(t, 10*time.Second, fmt.Sprintf("share %d recorded from a keyframe", share), func() bool { return tr.Keyframes() > 0 })
		CheckContinuous(t, tr.Log())
		shares = append(shares, tr)
		if err := pub.StopScreen(); err != nil {
			t.Fatalf("share %d: %v", share, err)
		}
		eventually.True(t, 20*time.Second, fmt.Sprintf("share %d ended in the recording", share), tr.Ended)
	}
	n := audio.Packets()
	eventually.True(t, 10*time.Second, "the sharer's audio still recorded", func() bool { return audio.Packets() > n+25 })
	if audio.Ended() {
		t.Fatal("the sharer's audio ended with the share")
	}
	if br := sink.Breaches(); len(br) > 0 {
		t.Fatalf("sink contract breached: %v", br)
	}
}
