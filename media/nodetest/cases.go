package nodetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
)

// Room is a test's participants and their senders, stopped when the test
// ends.
type Room struct {
	t     *testing.T
	stop  chan struct{}
	wg    sync.WaitGroup
	quiet atomic.Bool
}

// NewRoom returns an empty Room for t.
func NewRoom(t *testing.T) *Room {
	r := &Room{t: t, stop: make(chan struct{})}
	t.Cleanup(func() { r.quiet.Store(true); close(r.stop); r.wg.Wait() })
	return r
}

// Quiet is the flag that, once set, silences the negotiation errors of a
// room being torn down; JoinWith and the room's participants share it.
func (r *Room) Quiet() *atomic.Bool { return &r.quiet }

// Join adds a participant named name to room c_1 on node, on loopback,
// sending what pub says until the test ends.
func (r *Room) Join(node media.Node, name string, pub Publish) *Participant {
	r.t.Helper()
	return r.JoinWith(node, name, pub, LoopbackSettings())
}

// JoinWith is Join with the participant's own ICE settings.
func (r *Room) JoinWith(node media.Node, name string, pub Publish, se webrtc.SettingEngine) *Participant {
	r.t.Helper()
	p, err := JoinWith(r.t, node, "c_1", name, &r.quiet, pub, se)
	if err != nil {
		r.t.Fatalf("join %s: %v", name, err)
	}
	p.Send(r.stop, &r.wg)
	return p
}

// waitFor polls cond until it holds or within passes.
// nackAnswered: a subscriber that lost a packet and asks for it again
// receives it from the node's send cache.
func nackAnswered(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	sub := r.Join(node, "sub", Publish{})
	var n atomic.Int64
	lost := atomic.Int64{}
	lost.Store(-1)
	sub.Drop(func(seq uint16) bool {
		if n.Add(1) == 50 {
			lost.Store(int64(seq))
			return true
		}
		return false
	})
	r.Join(node, "pub", Publish{Video: true})
	eventually.True(t, 20*time.Second, "50 packets", func() bool { return lost.Load() >= 0 })
	seq := uint16(lost.Load())
	if err := sub.Nack("pub/pub", seq); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, fmt.Sprintf("retransmission of %d", seq), func() bool {
		return slices.ContainsFunc(sub.Log("pub/pub"), func(p Packet) bool { return p.Seq == seq })
	})
}

// nackAnsweredToAskerOnly: a packet one subscriber lost and asks for
// again is resent to it, with the sequence number and timestamp it was
// first sent with, and not to the other subscriber of the same track.
func nackAnsweredToAskerOnly(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	asker := r.Join(node, "asker", Publish{})
	other := r.Join(node, "other", Publish{})
	var n atomic.Int64
	lost := atomic.Int64{}
	lost.Store(-1)
	asker.Drop(func(seq uint16) bool {
		if n.Add(1) == 50 {
			lost.Store(int64(seq))
			return true
		}
		return false
	})
	r.Join(node, "pub", Publish{Video: true})
	eventually.True(t, 20*time.Second, "50 packets", func() bool { return lost.Load() >= 0 })
	seq := uint16(lost.Load())
	eventually.True(t, 5*time.Second, "the lost packet at the other subscriber", func() bool {
		return count(other.Log("pub/pub"), seq) == 1
	})
	if err := asker.Nack("pub/pub", seq); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, fmt.Sprintf("retransmission of %d", seq), func() bool { return count(asker.Log("pub/pub"), seq) == 1 })
	// The node resends on the reading goroutine of the asker's track; by
	// the time the other subscriber has 30 more packets, a copy sent to it
	// by mistake would have arrived too.
	after := other.From("pub/pub")
	eventually.True(t, 5*time.Second, "30 more packets at the other subscriber", func() bool { return other.From("pub/pub") >= after+30 })
	if c := count(other.Log("pub/pub"), seq); c != 1 {
		t.Errorf("the other subscriber received packet %d %d times, want once", seq, c)
	}
	resent, first := find(asker.Log("pub/pub"), seq), find(other.Log("pub/pub"), seq)
	if resent.TS != first.TS || resent.Keyframe != first.Keyframe {
		t.Errorf("retransmission %+v, first sent as %+v", resent, first)
	}
}

func count(log []Packet, seq uint16) int {
	n := 0
	for _, p := range log {
		if p.Seq == seq {
			n++
		}
	}
	return n
}

func find(log []Packet, seq uint16) Packet {
	i := slices.IndexFunc(log, func(p Packet) bool { return p.Seq == seq })
	if i < 0 {
		return Packet{}
	}
	return log[i]
}

// keyframeRequestsThrottled: many subscribers asking for keyframes at
// once make the node ask the publisher about four times a second, not
// each time.
func keyframeRequestsThrottled(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Video: true})
	subs := []*Participant{r.Join(node, "a", Publish{}), r.Join(node, "b", Publish{}), r.Join(node, "c", Publish{})}
	eventually.True(t, 20*time.Second, "media at every subscriber", func() bool {
		for _, s := range subs {
			if s.From("pub/pub") < 20 {
				return false
			}
		}
		return true
	})
	before := pub.PLIs()
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		for _, s := range subs {
			if err := s.RequestKeyframe("pub/pub"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	got := pub.PLIs() - before
	// 300 requests in 2 s; one per 250 ms, plus one at each edge.
	if limit := int64(time.Since(start)/(250*time.Millisecond)) + 2; got < 1 || got > limit {
		t.Fatalf("publisher got %d keyframe requests for 300 asked in %v, want 1..%d", got, time.Since(start).Round(time.Millisecond), limit)
	}
}

// newSubscriberGetsKeyframe: a member that joins after the publisher's
// last keyframe receives a keyframe promptly, without asking.
func newSubscriberGetsKeyframe(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	for _, pub := range []Publish{{Video: true}, {Simulcast: true}} {
		name := "cam"
		if pub.Simulcast {
			name = "sim"
		}
		r.Join(node, name, pub)
		first := r.Join(node, "first-"+name, Publish{})
		stream := name + "/" + name
		eventually.True(t, 20*time.Second, "media at the first subscriber", func() bool { return first.From(stream) > 100 })
		late := r.Join(node, "late-"+name, Publish{})
		eventually.True(t, 5*time.Second, "a keyframe at the late subscriber", func() bool {
			return slices.ContainsFunc(late.Log(stream), func(p Packet) bool { return p.Keyframe })
		})
	}
}

// deadSubscriber: a subscriber whose connection vanishes without a word
// does not reduce what the others receive.
func deadSubscriber(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Video: true, Audio: true})
	a, b, dead := r.Join(node, "a", Publish{}), r.Join(node, "b", Publish{}), r.Join(node, "dead", Publish{})
	eventually.True(t, 20*time.Second, "media at every subscriber", func() bool {
		return a.From("pub/pub") > 20 && b.From("pub/pub") > 20 && dead.From("pub/pub") > 20
	})
	dead.CloseAbruptly()
	time.Sleep(200 * time.Millisecond)
	sent0, a0, b0 := pub.Sent(), a.From("pub/pub"), b.From("pub/pub")
	time.Sleep(2 * time.Second)
	sent, gotA, gotB := pub.Sent()-sent0, a.From("pub/pub")-a0, b.From("pub/pub")-b0
	for name, got := range map[string]int64{"a": gotA, "b": gotB} {
		if got < sent*9/10 {
			t.Errorf("%s received %d of %d packets sent after a subscriber died", name, got, sent)
		}
	}
}

// simulcastFollowsView: a subscriber gets the full layer by default, the
// low one once it shows the video small, and back; each switch happens at
// a keyframe of the new layer, in one stream with continuous sequence
// numbers.
func simulcastFollowsView(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	r.Join(node, "pub", Publish{Simulcast: true})
	sub := r.Join(node, "sub", Publish{})
	const stream = "pub/pub"
	onLayer := func(layer byte) func() bool {
		return func() bool {
			log := sub.Log(stream)
			if len(log) < 30 {
				return false
			}
			for _, p := range log[len(log)-30:] {
				if p.Layer != layer {
					return false
				}
			}
			return true
		}
	}
	eventually.True(t, 20*time.Second, "the full layer by default", onLayer('f'))
	if err := sub.Session.View("pub", 160, 90); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the low layer for a thumbnail", onLayer('q'))
	if err := sub.Session.View("pub", 1280, 720); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the full layer again", onLayer('f'))
	if n := CheckContinuous(t, sub.Log(stream)); n < 2 {
		t.Errorf("%d layer switches, want 2", n)
	}
}

// CheckContinuous checks that a forwarded simulcast stream is one stream:
// one SSRC, every sequence number following the previous one, timestamps
// and VP8 picture IDs never going back nor skipping, and every change of
// layer at a keyframe of the new layer. It returns the number of layer
// changes.
func CheckContinuous(t *testing.T, log []Packet) int {
	t.Helper()
	// A pion client may miss the first packets, sent while it was still
	// starting its receivers: the stream is checked from the first
	// keyframe it received.
	for len(log) > 0 && !log[0].Keyframe {
		log = log[1:]
	}
	if len(log) == 0 {
		t.Fatal("no keyframe received")
	}
	switches := 0
	for i := 1; i < len(log); i++ {
		prev, p := log[i-1], log[i]
		if p.SSRC != prev.SSRC {
			t.Fatalf("packet %d: SSRC %d after %d", i, p.SSRC, prev.SSRC)
		}
		if p.Seq != prev.Seq+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.Seq, prev.Seq)
		}
		if int32(p.TS-prev.TS) < 0 {
			t.Fatalf("packet %d: timestamp %d after %d", i, p.TS, prev.TS)
		}
		if p.PictureID >= 0 && prev.PictureID >= 0 {
			if d := (p.PictureID - prev.PictureID) & 0x7fff; d > 1 {
				t.Fatalf("packet %d: VP8 picture ID %d after %d", i, p.PictureID, prev.PictureID)
			}
		}
		if p.Layer != prev.Layer {
			switches++
			if !p.Keyframe {
				t.Fatalf("packet %d: switch from layer %c to %c on %+v, not a keyframe", i, prev.Layer, p.Layer, p)
			}
		}
	}
	return switches
}

// activeSpeaker: every member hears who speaks, from the audio levels the
// browsers send, and the speaker changes when someone else takes over.
func activeSpeaker(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	ps := []*Participant{r.Join(node, "a", Publish{Audio: true}), r.Join(node, "b", Publish{Audio: true}), r.Join(node, "c", Publish{Audio: true})}
	speakerIs := func(m string) func() bool {
		return func() bool {
			for _, p := range ps {
				s := p.Speakers()
				if len(s) == 0 || s[len(s)-1] != m {
					return false
				}
			}
			return true
		}
	}
	ps[0].SetLevel(20)
	eventually.True(t, 10*time.Second, "a as speaker", speakerIs("a"))
	ps[0].SetLevel(127)
	ps[1].SetLevel(25)
	eventually.True(t, 10*time.Second, "b as speaker", speakerIs("b"))
	for _, p := range ps {
		if s := p.Speakers(); slices.Contains(s, "c") || len(s) > 3 {
			t.Errorf("%s heard speakers %q, want a then b", p.Name, s)
		}
	}
}

// senderReports: subscribers receive RTCP sender reports for what the node
// forwards, which browsers need to synchronise audio with video.
func senderReports(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	r.Join(node, "pub", Publish{Video: true, Audio: true})
	sub := r.Join(node, "sub", Publish{})
	eventually.True(t, 20*time.Second, "sender reports", func() bool { return sub.SenderReports() >= 2 })
}

// publisherRoundTrip: the node's receiver reports to a publisher answer
// the publisher's sender reports (last SR and the delay since), so the
// publisher knows its round-trip time, which its congestion control and
// its statistics use.
func publisherRoundTrip(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Video: true, Audio: true})
	r.Join(node, "sub", Publish{})
	eventually.True(t, 20*time.Second, "receiver reports answering sender reports", func() bool { return pub.RoundTripReports() >= 2 })
}

// nodeNacksPublisher: a packet lost between the publisher and the node is
// asked for again by the node.
func nodeNacksPublisher(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	pub := r.Join(node, "pub", Publish{Video: true})
	sub := r.Join(node, "sub", Publish{})
	eventually.True(t, 20*time.Second, "media at the subscriber", func() bool { return sub.From("pub/pub") > 20 })
	lost := uint16(pub.Sent() + 50)
	pub.SkipVideo(lost)
	eventually.True(t, 5*time.Second, fmt.Sprintf("a NACK for %d", lost), func() bool { return pub.Nacked(lost) })
}

// screenShare: a screen share published beside a simulcast camera is
// forwarded as it comes, as its own stream, while the camera follows the
// subscriber's view.
func screenShare(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	r.Join(node, "pub", Publish{Simulcast: true, Screen: true})
	sub := r.Join(node, "sub", Publish{})
	eventually.True(t, 20*time.Second, "the screen and the full camera layer", func() bool {
		log := sub.Log("pub/screen")
		cam := sub.Log("pub/pub")
		return len(log) > 30 && len(cam) > 30 && cam[len(cam)-1].Layer == 'f'
	})
	if err := sub.Session.View("pub", 160, 90); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the low camera layer", func() bool {
		cam := sub.Log("pub/pub")
		return cam[len(cam)-1].Layer == 'q'
	})
	log := sub.Log("pub/screen")
	for i, p := range log {
		if p.Layer != 's' {
			t.Fatalf("screen packet %d from layer %q", i, p.Layer)
		}
		if i > 0 && p.Seq != log[i-1].Seq+1 {
			t.Fatalf("screen packet %d: sequence number %d after %d", i, p.Seq, log[i-1].Seq)
		}
	}
}

// hiddenVideoPaused: a subscriber that shows a member's video nowhere (a
// 0x0 view: a hidden tab or tile) is sent none of it while its audio goes
// on; shown again, the video resumes at a keyframe in the same continuous
// stream.
func hiddenVideoPaused(t *testing.T, newNode nodeMaker) {
	node := newNode(t, 0)
	r := NewRoom(t)
	r.Join(node, "pub", Publish{Simulcast: true, Audio: true})
	sub := r.Join(node, "sub", Publish{})
	const stream = "pub/pub"
	eventually.True(t, 20*time.Second, "video and audio", func() bool { return len(sub.Log(stream)) > 30 && sub.AudioFrom(stream) > 10 })
	if err := sub.Session.View("pub", 0, 0); err != nil {
		t.Fatal(err)
	}
	// Packets already on their way still arrive; then nothing.
	var paused int
	eventually.True(t, 10*time.Second, "the video to stop", func() bool {
		paused = len(sub.Log(stream))
		time.Sleep(300 * time.Millisecond)
		return len(sub.Log(stream)) == paused
	})
	// Audio goes on (twenty packets, 0.4 s of it) while no video arrives.
	audio := sub.AudioFrom(stream)
	eventually.True(t, 10*time.Second, "audio to go on with the video hidden", func() bool { return sub.AudioFrom(stream) >= audio+20 })
	if n := len(sub.Log(stream)); n != paused {
		t.Fatalf("%d video packets arrived for a hidden video", n-paused)
	}
	if err := sub.Session.View("pub", 640, 360); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the video to resume", func() bool { return len(sub.Log(stream)) > paused+30 })
	log := sub.Log(stream)
	if !log[paused].Keyframe {
		t.Fatalf("the video resumed on %+v, not a keyframe", log[paused])
	}
	CheckContinuous(t, log)
}
