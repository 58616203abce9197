package sdpneg

import "testing"

// A member that stopped its only video section knows VP8 by the payload
// type it had there; the node's next video section keeps it (a pion
// member answered fresh payload types with its first ones), and the
// stopped section is written with its codecs' rtpmaps, which strict
// parsers look up even for a rejected section.
func TestStoppedSectionsPayloadTypes(t *testing.T) {
	vp8 := Codec{PayloadType: 100, Name: "VP8", ClockRate: 90000, RTX: 101}
	opus := Codec{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2}
	secs := []*section{
		{mid: "0", media: "audio", kind: Audio, codecs: []Codec{opus}},
		{mid: "1", media: "video", kind: Video, stopped: true, formats: []string{"100", "101"}, codecs: []Codec{vp8}},
	}
	got := offerCodecs(secs, Video)
	if len(got) == 0 || got[0].Name != "VP8" || got[0].PayloadType != 100 || got[0].RTX != 101 {
		t.Fatalf("the new video section's codecs %+v, want VP8 on 100 with RTX 101 first", got)
	}
	m := stoppedMedia(secs[1])
	if m.MediaName.Port.Value != 0 || len(m.MediaName.Formats) != 1 || m.MediaName.Formats[0] != "100" {
		t.Fatalf("stopped section %+v", m.MediaName)
	}
	if v, ok := m.Attribute("rtpmap"); !ok || v != "100 VP8/90000" {
		t.Fatalf("stopped section's rtpmap %q", v)
	}
}
