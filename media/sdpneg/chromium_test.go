package sdpneg_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// updateFixtures makes TestBrowserChromium write the descriptions
// Chromium produced to testdata, for TestChromiumFixtures.
var updateFixtures = flag.Bool("update-fixtures", false, "write Chromium's descriptions to testdata")

// member plays a member's side of the Chromium scenario, step by step.
type member interface {
	// offer makes the member's offer of a step.
	offer(t *testing.T, step string) string
	// answer answers the node's offer of a step.
	answer(t *testing.T, step, offer string) string
	// accept takes the node's answer; it returns the member's
	// transceivers in use as the browser has them, "mid:currentDirection",
	// or nil where they are not known.
	accept(t *testing.T, step, answer string) []string
}

// The steps of the Chromium scenario.
const (
	stepJoin    = "join"    // microphone, camera in three layers, a spare section of each kind
	stepTracks  = "tracks"  // the node offers a camera of its own section
	stepStop    = "stop"    // the member stops the spare video section the node sends on
	stepRecycle = "recycle" // the member shares a screen: the stopped m-line is recycled
	stepRetrack = "retrack" // the node offers the camera that lost its section on a new one
	stepDrop    = "drop"    // the member stops the section of the node's other camera
	stepReuse   = "reuse"   // the node offers that camera on the stopped m-line, recycled
)

// chromiumScenario runs a member that joins with a microphone and a
// simulcast camera, receives on spare sections, gets a new section from
// the node, stops a section and shares a screen on a recycled m-line.
func chromiumScenario(t *testing.T, m member) {
	n := newNode(t)
	u := must(n.ApplyOffer(m.offer(t, stepJoin)))(t)
	wantChanges(t, u, "0:section-added", "0:member-started", "1:section-added", "1:member-started", "2:section-added", "3:section-added")
	if rids := u.Sections[1].Member.RIDs; len(rids) != 3 || rids[0].ID != "q" || rids[2].ID != "f" {
		t.Errorf("camera layers %+v", rids)
	}
	wantVideoCodecs(t, u.Sections[1].Codecs)
	if u.Sections[0].Codecs[0].Name != "opus" || u.Sections[0].Extensions[sdpneg.URIAudioLevel] == 0 || !u.Sections[0].MemberSends {
		t.Errorf("microphone section %+v", u.Sections[0])
	}
	for mid, tr := range map[string]sdpneg.Track{"2": track("bob-mic", sdpneg.Audio, 1000), "3": track("bob-cam", sdpneg.Video, 2000)} {
		if err := n.AddTrackOn(mid, tr); err != nil {
			t.Fatal(err)
		}
	}
	answer := must(n.CreateAnswer())(t)
	wantMember(t, m.accept(t, stepJoin, answer), "0:sendonly", "1:sendonly", "2:recvonly", "3:recvonly")

	if err := n.AddTrack(track("carol-cam", sdpneg.Video, 3000)); err != nil {
		t.Fatal(err)
	}
	offer := must(n.CreateOffer())(t)
	u = must(n.ApplyAnswer(m.answer(t, stepTracks, offer)))(t)
	wantChanges(t, u, "4:section-added")
	if s := u.Sections[4]; !s.NodeSends || s.Codecs[0].Name != "VP8" || s.Codecs[0].RTX == 0 {
		t.Errorf("the node's new section %+v", s)
	}
	if cam := u.Sections[1]; !cam.MemberSends || len(cam.Member.RIDs) != 3 {
		t.Errorf("the member's camera after the node's offer: %+v", cam)
	}

	u = must(n.ApplyOffer(m.offer(t, stepStop)))(t)
	wantChanges(t, u, "3:section-stopped", "3:track-dropped")
	wantMember(t, m.accept(t, stepStop, must(n.CreateAnswer())(t)), "0:sendonly", "1:sendonly", "2:recvonly", "4:recvonly")

	u = must(n.ApplyOffer(m.offer(t, stepRecycle)))(t)
	screen := u.Sections[3]
	wantChanges(t, u, screen.Mid+":section-added", screen.Mid+":member-started")
	if screen.Mid == "3" || !screen.MemberSends || len(screen.Member.SSRCs) != 1 || screen.Member.SSRCs[0].RTX == 0 {
		t.Errorf("the screen on the recycled m-line: %+v", screen)
	}
	wantMember(t, m.accept(t, stepRecycle, must(n.CreateAnswer())(t)), "0:sendonly", "1:sendonly", "2:recvonly", "4:recvonly", screen.Mid+":sendonly")
	if !n.NeedsOffer() {
		t.Error("the camera whose section stopped needs no offer")
	}
	chromiumNodeRecycles(t, n, m)
}

// chromiumNodeRecycles continues the scenario: the node's camera that
// lost its section goes on a new one, the member stops the section of
// the node's other camera, and the node's next offer recycles it.
func chromiumNodeRecycles(t *testing.T, n *sdpneg.Negotiator, m member) {
	u := must(n.ApplyAnswer(m.answer(t, stepRetrack, must(n.CreateOffer())(t))))(t)
	wantChanges(t, u, "6:section-added")
	if s := u.Sections[5]; s.Mid != "6" || !s.NodeSends || s.Track.ID != "bob-cam" {
		t.Errorf("the camera's new section %+v", s)
	}
	u = must(n.ApplyOffer(m.offer(t, stepDrop)))(t)
	wantChanges(t, u, "4:section-stopped", "4:track-dropped")
	m.accept(t, stepDrop, must(n.CreateAnswer())(t))
	offer := must(n.CreateOffer())(t)
	u = must(n.ApplyAnswer(m.answer(t, stepReuse, offer)))(t)
	wantChanges(t, u, "7:section-added")
	if s := u.Sections[4]; len(u.Sections) != 6 || s.Mid != "7" || !s.NodeSends || s.Track.ID != "carol-cam" {
		t.Errorf("%d sections, the recycled m-line %+v", len(u.Sections), s)
	}
	if n.NeedsOffer() {
		t.Error("an offer is needed after every track went out")
	}
}

// wantMember compares the member's transceiver directions, when known.
func wantMember(t *testing.T, got []string, want ...string) {
	t.Helper()
	if got != nil && !slices.Equal(got, want) {
		t.Errorf("member's transceivers %v, want %v", got, want)
	}
}

// fixtureMember replays Chromium's descriptions from testdata.
type fixtureMember struct{}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (TestBrowserChromium -update-fixtures writes it)", err)
	}
	return string(b)
}

func (fixtureMember) offer(t *testing.T, step string) string {
	return fixture(t, "chromium-"+step+"-offer.sdp")
}

func (fixtureMember) answer(t *testing.T, step, _ string) string {
	return fixture(t, "chromium-"+step+"-answer.sdp")
}

func (fixtureMember) accept(*testing.T, string, string) []string { return nil }

func TestChromiumFixtures(t *testing.T) {
	chromiumScenario(t, fixtureMember{})
}
