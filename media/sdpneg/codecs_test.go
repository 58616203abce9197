package sdpneg

import (
	"fmt"
	"testing"
)

func TestAnswerCodecs(t *testing.T) {
	h264 := func(pt uint8, mode, profile string) Codec {
		return Codec{PayloadType: pt, Name: "H264", ClockRate: 90000, RTX: pt + 1,
			Fmtp: "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + profile, Feedback: []string{"nack", "nack pli", "rrtr"}}
	}
	for _, c := range []struct {
		name    string
		kind    Kind
		offered []Codec
		want    string // payload type/RTX payload type and feedback of each answered codec
	}{
		{"opus among others", Audio, []Codec{
			{PayloadType: 63, Name: "red", ClockRate: 48000, Channels: 2},
			{PayloadType: 109, Name: "OPUS", ClockRate: 48000, Channels: 2, Feedback: []string{"transport-cc"}},
			{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}, "[109/0 [transport-cc]]"},
		{"mono opus", Audio, []Codec{{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 1}}, "[]"},
		{"video in the offerer's order", Video, []Codec{
			h264(108, "1", "42e01f"), {PayloadType: 98, Name: "VP9", ClockRate: 90000, RTX: 99},
			{PayloadType: 96, Name: "VP8", ClockRate: 90000, RTX: 97, Feedback: []string{"goog-remb", "transport-cc", "ccm fir"}},
			h264(104, "0", "42001f"), h264(102, "1", "42001f"), h264(116, "1", "4d001f")},
			"[108/109 [nack nack pli] 96/97 [goog-remb transport-cc ccm fir] 102/103 [nack nack pli]]"},
		{"VP8 without RTX", Video, []Codec{{PayloadType: 100, Name: "VP8", ClockRate: 90000}}, "[100/0 []]"},
		{"payload type repeated", Video, []Codec{{PayloadType: 96, Name: "VP8", ClockRate: 90000}, h264(96, "1", "42e01f")}, "[96/0 []]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, a := range answerCodecs(c.kind, c.offered) {
				got = append(got, fmt.Sprintf("%d/%d %v", a.PayloadType, a.RTX, a.Feedback))
			}
			if s := fmt.Sprint(got); s != c.want {
				t.Errorf("answered %s, want %s", s, c.want)
			}
		})
	}
}

func TestOfferCodecsFollowTheBundle(t *testing.T) {
	// The member gave VP8 payload type 100 and opus 96: a new video
	// section keeps VP8 on 100 and takes none of 96.
	secs := []*section{
		{kind: Audio, codecs: []Codec{{PayloadType: 96, Name: "opus", ClockRate: 48000, Channels: 2}}, exts: map[string]int{URIMid: 3, URIAudioLevel: 1}},
		{kind: Video, codecs: []Codec{{PayloadType: 100, Name: "VP8", ClockRate: 90000, RTX: 101}}},
	}
	var got []string
	for _, c := range offerCodecs(secs, Video) {
		got = append(got, fmt.Sprintf("%s %d/%d", c.Name, c.PayloadType, c.RTX))
	}
	if s := fmt.Sprint(got); s != "[VP8 100/101 H264 102/103 H264 106/107]" {
		t.Errorf("video codecs %s", s)
	}
	if got := offerCodecs([]*section{{kind: Video, codecs: []Codec{{PayloadType: 96, Name: "H264", ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f", RTX: 111}}}}, Video); got[0].PayloadType == 96 || got[0].RTX == 111 {
		t.Errorf("VP8 takes a payload type in use: %+v", got[0])
	}
	exts := offerExtensions(secs, Video)
	if exts[URIMid] != 3 || exts[URIRID] != 2 || exts[URIRepairedRID] != 4 || exts[URITransportCC] != 5 {
		t.Errorf("video extensions %v", exts)
	}
}
