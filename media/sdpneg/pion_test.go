package sdpneg_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// nodeConfig is a node's transport as the tests give it.
func nodeConfig() sdpneg.Config {
	return sdpneg.Config{
		Ufrag: "nodeufrag", Pwd: "nodepassword0123456789abcd",
		Fingerprints: []sdpneg.Fingerprint{{Algorithm: "sha-256", Value: strings.TrimSuffix(strings.Repeat("AB:", 32), ":")}},
		Candidates:   []string{"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"},
	}
}

func newNode(t *testing.T) *sdpneg.Negotiator {
	t.Helper()
	n, err := sdpneg.New(nodeConfig())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newMember is a pion peer connection playing a member's browser: the
// default codecs, and the extensions simulcast and the audio level need.
func newMember(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{sdp.TransportCCURI, sdp.AudioLevelURI, sdpneg.URIMid} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(0)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// must fails the test on err, else returns v.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func localTrack(t *testing.T, kind, id, rid string) *webrtc.TrackLocalStaticRTP {
	t.Helper()
	c := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if kind == "audio" {
		c = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	}
	var opts []func(*webrtc.TrackLocalStaticRTP)
	if rid != "" {
		opts = append(opts, webrtc.WithRTPStreamID(rid))
	}
	return must(webrtc.NewTrackLocalStaticRTP(c, id, "member-stream", opts...))(t)
}

// addSimulcast adds a camera sending layers q, h and f.
func addSimulcast(t *testing.T, pc *webrtc.PeerConnection) *webrtc.RTPTransceiver {
	t.Helper()
	tr := must(pc.AddTransceiverFromTrack(localTrack(t, "video", "camera", "q"), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}))(t)
	for _, rid := range []string{"h", "f"} {
		if err := tr.Sender().AddEncoding(localTrack(t, "video", "camera", rid)); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// memberOffers has the member offer and the node apply it.
func memberOffers(t *testing.T, pc *webrtc.PeerConnection, n *sdpneg.Negotiator) *sdpneg.Update {
	t.Helper()
	offer := must(pc.CreateOffer(nil))(t)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	return must(n.ApplyOffer(offer.SDP))(t)
}

// nodeAnswers has the node answer and the member take the answer.
func nodeAnswers(t *testing.T, pc *webrtc.PeerConnection, n *sdpneg.Negotiator) string {
	t.Helper()
	answer := must(n.CreateAnswer())(t)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("member refused the node's answer: %v\n%s", err, answer)
	}
	return answer
}

// nodeOffers has the node offer, the member answer, and the node apply
// the answer; it returns the member's answer too.
func nodeOffers(t *testing.T, pc *webrtc.PeerConnection, n *sdpneg.Negotiator) (*sdpneg.Update, string) {
	t.Helper()
	offer := must(n.CreateOffer())(t)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatalf("member refused the node's offer: %v\n%s", err, offer)
	}
	answer := must(pc.CreateAnswer(nil))(t)
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	return must(n.ApplyAnswer(answer.SDP))(t), answer.SDP
}

// directions lists a description's directions by mid, "stopped" for a
// port-0 section.
func directions(t *testing.T, raw string) map[string]string {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		out[mid] = "sendrecv"
		for _, a := range m.Attributes {
			if slices.Contains([]string{"sendrecv", "sendonly", "recvonly", "inactive"}, a.Key) {
				out[mid] = a.Key
			}
		}
		if m.MediaName.Port.Value == 0 {
			out[mid] = "stopped"
		}
	}
	return out
}

func changes(u *sdpneg.Update) []string {
	var out []string
	for _, c := range u.Changes {
		out = append(out, c.Mid+":"+c.Kind.String())
	}
	slices.Sort(out)
	return out
}

func wantChanges(t *testing.T, u *sdpneg.Update, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := changes(u); !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

func wantDirections(t *testing.T, what, raw string, want map[string]string) {
	t.Helper()
	got := directions(t, raw)
	for mid, w := range want {
		if got[mid] != w {
			t.Errorf("%s: section %s is %s, want %s", what, mid, got[mid], w)
		}
	}
}

func track(id string, kind sdpneg.Kind, ssrc uint32) sdpneg.Track {
	return sdpneg.Track{ID: id, StreamID: "alice/" + string(kind), Kind: kind, SSRC: ssrc, RTXSSRC: ssrc + 1, CNAME: "alice"}
}

// joined is a member with a microphone, a simulcast camera and a spare
// receive-only section of each kind, whose first offer the node answered
// with a track of its own on each spare section.
func joined(t *testing.T) (*webrtc.PeerConnection, *sdpneg.Negotiator, *sdpneg.Update) {
	t.Helper()
	pc, n := newMember(t), newNode(t)
	if _, err := pc.AddTransceiverFromTrack(localTrack(t, "audio", "mic", ""), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	addSimulcast(t, pc)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	u := memberOffers(t, pc, n)
	if err := n.AddTrackOn("2", track("bob-mic", sdpneg.Audio, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := n.AddTrackOn("3", track("bob-cam", sdpneg.Video, 2000)); err != nil {
		t.Fatal(err)
	}
	answer := nodeAnswers(t, pc, n)
	wantDirections(t, "node's answer", answer, map[string]string{"0": "recvonly", "1": "recvonly", "2": "sendonly", "3": "sendonly"})
	return pc, n, u
}

func TestPionMemberOfferIsAnswered(t *testing.T) {
	pc, n, u := joined(t)
	wantChanges(t, u, "0:section-added", "0:member-started", "1:section-added", "1:member-started", "2:section-added", "3:section-added")
	if len(u.Sections) != 4 {
		t.Fatalf("%d sections, want 4", len(u.Sections))
	}
	mic, cam := u.Sections[0], u.Sections[1]
	if !mic.MemberSends || mic.Kind != sdpneg.Audio || len(mic.Member.SSRCs) != 1 || mic.Member.TrackID != "mic" || mic.Member.StreamID != "member-stream" {
		t.Errorf("microphone section: %+v", mic)
	}
	if mic.Codecs[0].Name != "opus" || mic.Codecs[0].PayloadType != 111 || mic.Extensions[sdpneg.URIAudioLevel] == 0 {
		t.Errorf("microphone codecs %+v extensions %v", mic.Codecs, mic.Extensions)
	}
	var rids []string
	for _, r := range cam.Member.RIDs {
		rids = append(rids, r.ID)
	}
	if !slices.Equal(rids, []string{"q", "h", "f"}) || cam.Extensions[sdpneg.URIRID] == 0 || cam.Extensions[sdpneg.URIRepairedRID] == 0 {
		t.Errorf("camera layers %v, extensions %v", rids, cam.Extensions)
	}
	wantVideoCodecs(t, cam.Codecs)
	for _, s := range u.Sections[2:] {
		if s.MemberSends || len(s.Codecs) == 0 {
			t.Errorf("receive-only section %s: %+v", s.Mid, s)
		}
	}
	if n.Role() != sdpneg.Passive || u.Transport.Setup != sdpneg.ActPass || u.Transport.Ufrag == "" || len(u.Transport.Fingerprints) == 0 {
		t.Errorf("role %s, member transport %+v", n.Role(), u.Transport)
	}
	answer := pc.CurrentRemoteDescription().SDP
	if !strings.Contains(answer, "a=simulcast:recv q;h;f") || !strings.Contains(answer, "a=rid:h recv") {
		t.Errorf("answer does not take the camera's layers:\n%s", answer)
	}
	for _, s := range n.Sections() {
		if s.NodeSends != (s.Mid == "2" || s.Mid == "3") {
			t.Errorf("section %s: node sends %v", s.Mid, s.NodeSends)
		}
	}
}

// wantVideoCodecs checks the video codecs both pion and the node have:
// VP8 first, with RTX, and the two H.264 profiles in packetization mode 1.
func wantVideoCodecs(t *testing.T, codecs []sdpneg.Codec) {
	t.Helper()
	var names []string
	for _, c := range codecs {
		names = append(names, c.Name)
		if c.RTX == 0 || !slices.Contains(c.Feedback, "nack pli") {
			t.Errorf("codec %+v has no RTX or no PLI", c)
		}
		if c.Name == "H264" && !strings.Contains(c.Fmtp, "packetization-mode=1") {
			t.Errorf("H.264 %s negotiated", c.Fmtp)
		}
	}
	if len(names) < 2 || names[0] != "VP8" || !slices.Contains(names, "H264") || slices.Contains(names, "VP9") {
		t.Errorf("video codecs %v", names)
	}
}

func TestPionNodeOffersNewTracks(t *testing.T) {
	pc, n, _ := joined(t)
	if n.NeedsOffer() {
		t.Fatal("offer needed with nothing to change")
	}
	for _, tr := range []sdpneg.Track{track("carol-mic", sdpneg.Audio, 3000), track("carol-cam", sdpneg.Video, 4000)} {
		if err := n.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	if !n.NeedsOffer() {
		t.Fatal("no offer needed for two new tracks")
	}
	u, answer := nodeOffers(t, pc, n)
	wantChanges(t, u, "4:section-added", "5:section-added")
	wantDirections(t, "member's answer", answer, map[string]string{"0": "sendonly", "1": "sendonly", "2": "recvonly", "3": "recvonly", "4": "recvonly", "5": "recvonly"})
	cam := u.Sections[5]
	if !cam.NodeSends || cam.Track == nil || cam.Track.ID != "carol-cam" || cam.MemberSends {
		t.Errorf("new camera section %+v", cam)
	}
	wantVideoCodecs(t, cam.Codecs)
	if cam.Codecs[0].PayloadType != 96 || cam.Codecs[0].RTX != 97 || cam.Extensions[sdpneg.URITransportCC] == 0 {
		t.Errorf("new camera section codecs %+v extensions %v", cam.Codecs, cam.Extensions)
	}
	if n.NeedsOffer() || n.State() != sdpneg.Stable || len(pc.GetTransceivers()) != 6 {
		t.Errorf("after the answer: offer needed %v, state %s, member transceivers %d", n.NeedsOffer(), n.State(), len(pc.GetTransceivers()))
	}
	if !strings.Contains(pc.CurrentRemoteDescription().SDP, "a=ssrc-group:FID 4000 4001") {
		t.Error("the node's offer has no RTX group for its camera")
	}
	// The camera goes: its section goes receive-only, not away.
	if err := n.RemoveTrack("carol-cam"); err != nil {
		t.Fatal(err)
	}
	u, answer = nodeOffers(t, pc, n)
	wantDirections(t, "member's answer", answer, map[string]string{"5": "inactive"})
	if s := u.Sections[5]; s.NodeSends || s.Stopped || s.Track != nil {
		t.Errorf("section of the removed camera %+v", s)
	}
	// The next camera takes that free section.
	if err := n.AddTrack(track("dave-cam", sdpneg.Video, 5000)); err != nil {
		t.Fatal(err)
	}
	u, _ = nodeOffers(t, pc, n)
	if s := u.Sections[5]; len(u.Sections) != 6 || !s.NodeSends || s.Track.ID != "dave-cam" {
		t.Errorf("%d sections; the next camera's: %+v", len(u.Sections), s)
	}
}

func TestPionMemberChangesMidCall(t *testing.T) {
	pc, n, _ := joined(t)
	micSender := pc.GetTransceivers()[0].Sender()
	if err := pc.RemoveTrack(micSender); err != nil {
		t.Fatal(err)
	}
	// A screen shared mid-call, on a section of its own.
	if _, err := pc.AddTransceiverFromTrack(localTrack(t, "video", "screen", ""), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	u := memberOffers(t, pc, n)
	wantChanges(t, u, "0:member-stopped", "4:section-added", "4:member-started")
	screen := u.Sections[4]
	if screen.Member.TrackID != "screen" || len(screen.Member.SSRCs) != 1 || screen.Member.SSRCs[0].RTX == 0 {
		t.Errorf("screen section %+v", screen)
	}
	answer := nodeAnswers(t, pc, n)
	wantDirections(t, "node's answer", answer, map[string]string{"0": "inactive", "1": "recvonly", "2": "sendonly", "3": "sendonly", "4": "recvonly"})
}

func TestPionGlareRollback(t *testing.T) {
	pc, n, _ := joined(t)
	if err := n.AddTrack(track("carol-cam", sdpneg.Video, 3000)); err != nil {
		t.Fatal(err)
	}
	crossed := must(n.CreateOffer())(t)
	// The member's offer crosses the node's.
	if _, err := pc.AddTransceiverFromTrack(localTrack(t, "video", "screen", ""), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer := must(pc.CreateOffer(nil))(t)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyOffer(offer.SDP); !errors.Is(err, sdpneg.ErrState) {
		t.Fatalf("member's offer over the node's: %v, want ErrState", err)
	}
	if err := n.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ApplyAnswer(crossed); !errors.Is(err, sdpneg.ErrState) {
		t.Errorf("answer after rollback: %v, want ErrState", err)
	}
	u := must(n.ApplyOffer(offer.SDP))(t)
	wantChanges(t, u, "4:section-added", "4:member-started")
	nodeAnswers(t, pc, n)
	// What the rolled back offer carried goes with the next one, on a
	// mid the member did not take meanwhile.
	u, _ = nodeOffers(t, pc, n)
	last := u.Sections[len(u.Sections)-1]
	if len(u.Sections) != 6 || last.Track == nil || last.Track.ID != "carol-cam" || !last.NodeSends || last.Mid == "4" {
		t.Errorf("after the rollback, the node's offer gave %+v", u.Sections)
	}
}

func TestPionICERestart(t *testing.T) {
	pc, n, _ := joined(t)
	before, _ := n.Remote()
	offer := must(pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true}))(t)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	u := must(n.ApplyOffer(offer.SDP))(t)
	if !u.ICERestart || u.Transport.Ufrag == before.Ufrag || len(u.Changes) != 0 {
		t.Fatalf("restart %v, ufrag %q (was %q), changes %v", u.ICERestart, u.Transport.Ufrag, before.Ufrag, changes(u))
	}
	if err := n.SetCredentials("nodeufrag2", "nodepassword0123456789efgh"); err != nil {
		t.Fatal(err)
	}
	if answer := nodeAnswers(t, pc, n); !strings.Contains(answer, "a=ice-ufrag:nodeufrag2") {
		t.Errorf("answer without the new ufrag:\n%s", answer)
	}
	if after, _ := n.Remote(); after.Ufrag != u.Transport.Ufrag {
		t.Errorf("remote ufrag %q after the answer", after.Ufrag)
	}
}
