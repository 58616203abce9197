package sdpneg_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// first is a member's first offer: a microphone, a camera in layers and a
// spare receive-only video section.
func first() string {
	return desc(media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv", simulcast("cam")...), media("video", "2", "recvonly"))
}

// negotiated is a node that answered first.
func negotiated(t *testing.T) *sdpneg.Negotiator {
	t.Helper()
	n := newNode(t)
	must(n.ApplyOffer(first()))(t)
	must(n.CreateAnswer())(t)
	return n
}

func TestStateErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		node func(*testing.T) *sdpneg.Negotiator
		call func(*sdpneg.Negotiator) error
	}{
		{"offer before the member's", newNode, func(n *sdpneg.Negotiator) error { _, err := n.CreateOffer(); return err }},
		{"answer without offer", newNode, func(n *sdpneg.Negotiator) error { _, err := n.CreateAnswer(); return err }},
		{"remote answer in stable", negotiated, func(n *sdpneg.Negotiator) error { _, err := n.ApplyAnswer(first()); return err }},
		{"rollback in stable", negotiated, func(n *sdpneg.Negotiator) error { return n.Rollback() }},
		{"track on a section outside an offer", negotiated, func(n *sdpneg.Negotiator) error { return n.AddTrackOn("2", track("x", sdpneg.Video, 1)) }},
		{"offer over a remote offer", func(t *testing.T) *sdpneg.Negotiator {
			n := negotiated(t)
			must(n.ApplyOffer(first()))(t)
			return n
		}, func(n *sdpneg.Negotiator) error { _, err := n.CreateOffer(); return err }},
		{"remote offer over the node's (glare)", func(t *testing.T) *sdpneg.Negotiator {
			n := negotiated(t)
			must(n.CreateOffer())(t)
			return n
		}, func(n *sdpneg.Negotiator) error { _, err := n.ApplyOffer(first()); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(c.node(t)); !errors.Is(err, sdpneg.ErrState) {
				t.Fatalf("error %v, want ErrState", err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*sdpneg.Config)
	}{
		{"short ufrag", func(c *sdpneg.Config) { c.Ufrag = "abc" }},
		{"ufrag with a space", func(c *sdpneg.Config) { c.Ufrag = "ab cd" }},
		{"short pwd", func(c *sdpneg.Config) { c.Pwd = "short" }},
		{"pwd with a line break", func(c *sdpneg.Config) { c.Pwd = strings.Repeat("p", 22) + "\r\n" }},
		{"no fingerprint", func(c *sdpneg.Config) { c.Fingerprints = nil }},
		{"fingerprint with a space", func(c *sdpneg.Config) { c.Fingerprints[0].Value = "AB CD" }},
		{"not a candidate", func(c *sdpneg.Config) { c.Candidates = []string{"1 1 udp 1 127.0.0.1 9 typ host"} }},
		{"candidate with a line break", func(c *sdpneg.Config) { c.Candidates = []string{"candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=x"} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := nodeConfig()
			c.edit(&cfg)
			if _, err := sdpneg.New(cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
	n := newNode(t)
	if err := n.SetCredentials("abc", "x"); err == nil {
		t.Error("short credentials taken")
	}
}

func TestTrackErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		call func(*sdpneg.Negotiator) error
	}{
		{"no kind", func(n *sdpneg.Negotiator) error { return n.AddTrack(sdpneg.Track{ID: "a", SSRC: 1}) }},
		{"no ssrc", func(n *sdpneg.Negotiator) error { return n.AddTrack(sdpneg.Track{ID: "a", Kind: sdpneg.Audio}) }},
		{"added twice", func(n *sdpneg.Negotiator) error {
			_ = n.AddTrack(track("a", sdpneg.Audio, 1))
			return n.AddTrack(track("a", sdpneg.Audio, 2))
		}},
		{"line break in the id", func(n *sdpneg.Negotiator) error {
			return n.AddTrack(sdpneg.Track{ID: "a\r\na=ssrc:1 cname:x", StreamID: "s", Kind: sdpneg.Audio, SSRC: 1})
		}},
		{"no stream", func(n *sdpneg.Negotiator) error {
			return n.AddTrack(sdpneg.Track{ID: "a", Kind: sdpneg.Audio, SSRC: 1})
		}},
		{"removed unknown", func(n *sdpneg.Negotiator) error { return n.RemoveTrack("nope") }},
		{"on an unknown section", func(n *sdpneg.Negotiator) error { return n.AddTrackOn("9", track("a", sdpneg.Video, 1)) }},
		{"on a section of another kind", func(n *sdpneg.Negotiator) error { return n.AddTrackOn("2", track("a", sdpneg.Audio, 1)) }},
		{"on a section the member only sends on", func(n *sdpneg.Negotiator) error { return n.AddTrackOn("3", track("a", sdpneg.Video, 1)) }},
		{"twice on one section", func(n *sdpneg.Negotiator) error {
			_ = n.AddTrackOn("2", track("a", sdpneg.Video, 1))
			return n.AddTrackOn("2", track("b", sdpneg.Video, 2))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t)
			must(n.ApplyOffer(desc(media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv"), media("video", "2", "recvonly"),
				media("video", "3", "sendonly", sending("cam", 20)...))))(t)
			if err := c.call(n); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestLaterOfferRefused(t *testing.T) {
	mic, cam := media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv", simulcast("cam")...)
	for _, c := range []struct {
		name, offer string
		want        error
	}{
		{"a section less", desc(mic, cam), sdpneg.ErrMalformed},
		{"a section of another kind", desc(mic, cam, media("audio", "2", "recvonly")), sdpneg.ErrMalformed},
		{"an m-line in use takes another mid", desc(mic, cam, media("video", "7", "recvonly")), sdpneg.ErrMalformed},
		{"a new m-line takes a mid in use", desc(mic, cam, media("video", "2", "recvonly"), media("video", "1", "recvonly")), sdpneg.ErrMalformed},
		{"the member turns DTLS server", strings.ReplaceAll(first(), "a=setup:actpass", "a=setup:passive"), sdpneg.ErrUnsupported},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := negotiated(t)
			if _, err := n.ApplyOffer(c.offer); !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if n.State() != sdpneg.Stable {
				t.Errorf("state %s", n.State())
			}
		})
	}
}

func TestLaterOffers(t *testing.T) {
	mic, cam := media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv", simulcast("cam")...)
	for _, c := range []struct {
		name, offer string
		changes     []string
		restart     bool
	}{
		{"the same again", first(), nil, false},
		{"ICE restart", strings.ReplaceAll(first(), memberUfrag, "newu"), nil, true},
		{"microphone off", desc(media("audio", "0", "recvonly"), cam, media("video", "2", "recvonly")), []string{"0:member-stopped"}, false},
		{"camera inactive", desc(mic, media("video", "1", "inactive"), media("video", "2", "recvonly")), []string{"1:member-stopped"}, false},
		{"other layers", desc(mic, media("video", "1", "sendrecv", "a=msid:stream cam", "a=rid:q send", "a=rid:f send", "a=simulcast:send q;f"), media("video", "2", "recvonly")),
			[]string{"1:member-changed"}, false},
		{"screen on the spare section", desc(mic, cam, media("video", "2", "sendrecv", sending("screen", 30)...)), []string{"2:member-started"}, false},
		{"camera stopped", desc(mic, stopped("video", "1"), media("video", "2", "recvonly")), []string{"1:section-stopped", "1:member-stopped"}, false},
		{"screen added", desc(mic, cam, media("video", "2", "recvonly"), media("video", "3", "sendonly", sending("screen", 30)...)),
			[]string{"3:section-added", "3:member-started"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := negotiated(t)
			u := must(n.ApplyOffer(c.offer))(t)
			wantChanges(t, u, c.changes...)
			if u.ICERestart != c.restart {
				t.Errorf("ICE restart %v, want %v", u.ICERestart, c.restart)
			}
			if c.restart {
				if err := n.SetCredentials("ufr2", "newnodepassword0123456789"); err != nil {
					t.Fatal(err)
				}
			}
			answer := must(n.CreateAnswer())(t)
			if got := strings.Contains(answer, "a=ice-ufrag:ufr2"); got != c.restart {
				t.Errorf("answer with new credentials: %v", got)
			}
			if r, _ := n.Remote(); r.Ufrag != u.Transport.Ufrag {
				t.Errorf("remote ufrag %q after the answer, want %q", r.Ufrag, u.Transport.Ufrag)
			}
		})
	}
}

func TestRemoteRollback(t *testing.T) {
	n := negotiated(t)
	before := n.Sections()
	must(n.ApplyOffer(desc(media("audio", "0", "recvonly"), stopped("video", "1"), media("video", "2", "recvonly"))))(t)
	if err := n.Rollback(); err != nil {
		t.Fatal(err)
	}
	after := n.Sections()
	if len(after) != len(before) || !after[1].MemberSends || after[1].Stopped || n.State() != sdpneg.Stable {
		t.Errorf("after rollback: %+v", after)
	}
}

func TestApplyAnswerRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(answer string) string
		want error
	}{
		{"a section less", func(a string) string { return a[:strings.LastIndex(a, "m=")] }, sdpneg.ErrMalformed},
		{"other mid", func(a string) string {
			return strings.NewReplacer("a=mid:2", "a=mid:9", "BUNDLE 0 1 2", "BUNDLE 0 1 9").Replace(a)
		}, sdpneg.ErrMalformed},
		{"codec not offered", func(a string) string { return strings.ReplaceAll(a, "VP8/90000", "VP9/90000") }, sdpneg.ErrMalformed},
		{"setup actpass", func(a string) string { return strings.ReplaceAll(a, "a=setup:active", "a=setup:actpass") }, sdpneg.ErrMalformed},
		{"DTLS role turned", func(a string) string { return strings.ReplaceAll(a, "a=setup:active", "a=setup:passive") }, sdpneg.ErrUnsupported},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := negotiated(t)
			if err := n.AddTrack(track("bob", sdpneg.Video, 50)); err != nil {
				t.Fatal(err)
			}
			offer := must(n.CreateOffer())(t)
			// The member's answer mirrors the offer, as a browser's would.
			answer := strings.NewReplacer("a=ice-lite\r\n", "", "a=setup:actpass", "a=setup:active", "a=sendonly", "a=recvonly",
				"a=ice-ufrag:nodeufrag", "a=ice-ufrag:"+memberUfrag).Replace(offer)
			if _, err := n.ApplyAnswer(c.edit(answer)); !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if n.State() != sdpneg.HaveLocalOffer {
				t.Errorf("state %s", n.State())
			}
			u, err := n.ApplyAnswer(answer)
			if err != nil {
				t.Fatalf("the answer itself: %v", err)
			}
			// The track went on the spare section, where neither side sent.
			if s := u.Sections[2]; len(u.Sections) != 3 || !s.NodeSends || s.Track.ID != "bob" {
				t.Errorf("sections %+v", u.Sections)
			}
		})
	}
}

// The node's answer on a section, by what the member's offer declares
// there and whether the node has a track on it.
func TestAnswerDirections(t *testing.T) {
	for _, c := range []struct {
		member string
		track  bool
		want   string
	}{
		{"sendrecv", false, "a=recvonly"},
		{"sendonly", false, "a=recvonly"},
		{"recvonly", false, "a=inactive"},
		{"inactive", false, "a=inactive"},
		{"sendrecv", true, "a=sendrecv"},
		{"sendonly", true, "a=recvonly"},
		{"recvonly", true, "a=sendonly"},
		{"inactive", true, "a=inactive"},
	} {
		t.Run(fmt.Sprintf("%s, node track %v", c.member, c.track), func(t *testing.T) {
			n := negotiated(t)
			if c.track {
				must(n.ApplyOffer(first()))(t)
				if err := n.AddTrackOn("2", track("bob", sdpneg.Video, 50)); err != nil {
					t.Fatal(err)
				}
				must(n.CreateAnswer())(t)
			}
			must(n.ApplyOffer(desc(media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv", simulcast("cam")...),
				media("video", "2", c.member, sending("screen", 30)...))))(t)
			answer := must(n.CreateAnswer())(t)
			section := answer[strings.Index(answer, "a=mid:2"):]
			if !strings.Contains(section, c.want+"\r\n") {
				t.Errorf("answer section, want %s:\n%s", c.want, section)
			}
			s := n.Sections()[2]
			if s.NodeSends != strings.Contains(c.want, "send") || s.MemberSends != strings.HasPrefix(c.member, "send") {
				t.Errorf("section %+v", s)
			}
		})
	}
}

// A track in a codec goes only on a section that negotiated it.
func TestTrackCodecPlacement(t *testing.T) {
	h264 := sdpneg.Codec{Name: "H264", Fmtp: "packetization-mode=1;profile-level-id=42e01f"}
	for _, c := range []struct {
		name  string
		codec sdpneg.Codec
		mid   string // where the track goes with the node's offer
	}{
		{"any codec", sdpneg.Codec{}, "2"},
		{"VP8", sdpneg.Codec{Name: "vp8"}, "2"},
		{"H.264", h264, "3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := negotiated(t) // its spare section 2 negotiated VP8 only
			tr := track("bob", sdpneg.Video, 50)
			tr.Codec = c.codec
			must(n.ApplyOffer(first()))(t)
			err := n.AddTrackOn("2", tr)
			if (err == nil) != (c.mid == "2") {
				t.Fatalf("track on the VP8 section: %v", err)
			}
			if err := n.Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := n.AddTrack(tr); err != nil && c.mid != "2" {
				t.Fatal(err)
			}
			offer := must(n.CreateOffer())(t)
			i := strings.Index(offer, "a=msid:alice/video bob")
			if i < 0 || strings.LastIndex(offer[:i], "a=mid:") != strings.LastIndex(offer[:i], "a=mid:"+c.mid) {
				t.Errorf("the track is not on section %s:\n%s", c.mid, offer)
			}
		})
	}
}

// The node's DTLS role in its answer to the member's first offer.
func TestDTLSRole(t *testing.T) {
	for _, c := range []struct {
		member string
		want   sdpneg.Setup
	}{
		{"actpass", sdpneg.Passive},
		{"active", sdpneg.Passive},
		{"passive", sdpneg.Active},
	} {
		t.Run(c.member, func(t *testing.T) {
			n := newNode(t)
			u := must(n.ApplyOffer(strings.ReplaceAll(first(), "a=setup:actpass", "a=setup:"+c.member)))(t)
			if string(u.Transport.Setup) != c.member {
				t.Errorf("member's setup read as %s", u.Transport.Setup)
			}
			answer := must(n.CreateAnswer())(t)
			if n.Role() != c.want || strings.Count(answer, "a=setup:"+string(c.want)+"\r\n") != 3 {
				t.Errorf("role %s, want %s:\n%s", n.Role(), c.want, answer)
			}
			// Later offers leave the role to the node, which keeps it.
			must(n.ApplyOffer(first()))(t)
			if answer := must(n.CreateAnswer())(t); !strings.Contains(answer, "a=setup:"+string(c.want)) {
				t.Errorf("the role changed in a later answer:\n%s", answer)
			}
		})
	}
}
