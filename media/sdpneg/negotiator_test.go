package sdpneg_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/media/sdpneg"
)

func TestApplyOfferRefuses(t *testing.T) {
	good := desc(media("audio", "0", "sendrecv", sending("mic", 10)...), media("video", "1", "sendrecv", simulcast("cam")...))
	repl := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	many := func(line string, n int) string {
		var ls []string
		for i := range n {
			ls = append(ls, fmt.Sprintf(line, i+1))
		}
		return desc(media("video", "0", "sendrecv", ls...))
	}
	for _, c := range []struct {
		name   string
		sdp    string
		cfg    func(*sdpneg.Config)
		want   error
		detail string
	}{
		{name: "not sdp", sdp: "hello", want: sdpneg.ErrMalformed},
		{name: "too large", sdp: good, cfg: func(c *sdpneg.Config) { c.MaxBytes = 100 }, want: sdpneg.ErrTooLarge, detail: "the limit is 100"},
		{name: "too many sections", sdp: good, cfg: func(c *sdpneg.Config) { c.MaxSections = 1 }, want: sdpneg.ErrTooLarge, detail: "2 media sections"},
		{name: "no section", sdp: desc(), want: sdpneg.ErrMalformed},
		{name: "no mid", sdp: repl("a=mid:0\r\n", ""), want: sdpneg.ErrMalformed, detail: "mid"},
		{name: "mid repeated", sdp: desc(media("audio", "0", "recvonly"), media("video", "0", "recvonly")), want: sdpneg.ErrMalformed, detail: "repeated"},
		{name: "mid too long", sdp: desc(media("audio", strings.Repeat("m", 17), "recvonly")), want: sdpneg.ErrMalformed},
		{name: "mid with a space", sdp: repl("a=mid:0", "a=mid:0 x"), want: sdpneg.ErrMalformed},
		{name: "not bundled", sdp: repl("BUNDLE 0 1", "BUNDLE 0"), want: sdpneg.ErrUnsupported, detail: "BUNDLE"},
		{name: "two bundles", sdp: repl("a=group:BUNDLE 0 1", "a=group:BUNDLE 0\r\na=group:BUNDLE 1"), want: sdpneg.ErrUnsupported},
		{name: "no rtcp-mux", sdp: repl("a=rtcp-mux\r\n", ""), want: sdpneg.ErrUnsupported, detail: "rtcp-mux"},
		{name: "plain RTP", sdp: repl("UDP/TLS/RTP/SAVPF 111", "RTP/AVP 111"), want: sdpneg.ErrUnsupported},
		{name: "no fingerprint", sdp: strings.ReplaceAll(good, "a=fingerprint:"+memberFP+"\r\n", ""), want: sdpneg.ErrUnsupported, detail: "fingerprint"},
		{name: "fingerprint without value", sdp: repl("a=fingerprint:"+memberFP, "a=fingerprint:sha-256"), want: sdpneg.ErrMalformed},
		{name: "no ufrag", sdp: strings.ReplaceAll(good, "a=ice-ufrag:"+memberUfrag+"\r\n", ""), want: sdpneg.ErrMalformed, detail: "ufrag"},
		{name: "bad setup", sdp: repl("a=setup:actpass", "a=setup:both"), want: sdpneg.ErrMalformed},
		{name: "rtpmap without clock", sdp: repl("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus"), want: sdpneg.ErrMalformed},
		{name: "payload type out of range", sdp: repl("a=rtpmap:111 opus", "a=rtpmap:200 opus"), want: sdpneg.ErrMalformed},
		{name: "payload type mapped twice", sdp: repl("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/2\r\na=rtpmap:111 PCMU/8000"), want: sdpneg.ErrMalformed},
		{name: "format repeated", sdp: repl("SAVPF 111", "SAVPF 111 111"), want: sdpneg.ErrMalformed},
		{name: "too many formats", sdp: repl("SAVPF 111", "SAVPF 111"+strings.Repeat(" 0", 128)), want: sdpneg.ErrTooLarge},
		{name: "format not a number", sdp: repl("SAVPF 111", "SAVPF opus"), want: sdpneg.ErrMalformed},
		{name: "extension id 15", sdp: repl("a=extmap:1 ", "a=extmap:15 "), want: sdpneg.ErrMalformed},
		{name: "extension id 256", sdp: repl("a=extmap:1 ", "a=extmap:256 "), want: sdpneg.ErrMalformed},
		{name: "extension id twice", sdp: repl("a=extmap:4 ", "a=extmap:3 "), want: sdpneg.ErrMalformed, detail: "used twice"},
		{name: "ssrc not a number", sdp: repl("a=ssrc:10 ", "a=ssrc:ten "), want: sdpneg.ErrMalformed},
		{name: "ssrc too large", sdp: repl("a=ssrc:10 ", "a=ssrc:4294967296 "), want: sdpneg.ErrMalformed},
		{name: "FID of one", sdp: repl("FID 10 11", "FID 10"), want: sdpneg.ErrMalformed},
		{name: "rid direction", sdp: repl("a=rid:q send", "a=rid:q both"), want: sdpneg.ErrMalformed},
		{name: "rid name", sdp: repl("a=rid:q send", "a=rid:q! send"), want: sdpneg.ErrMalformed},
		{name: "simulcast of an undeclared rid", sdp: repl("send q;h;f", "send q;h;x"), want: sdpneg.ErrMalformed, detail: `"x"`},
		{name: "simulcast without list", sdp: repl("a=simulcast:send q;h;f", "a=simulcast:send"), want: sdpneg.ErrMalformed},
		{name: "too many rids", sdp: many("a=rid:r%d send", 9), want: sdpneg.ErrTooLarge},
		{name: "too many ssrcs", sdp: many("a=ssrc:%d cname:c", 33), want: sdpneg.ErrTooLarge},
		{name: "too many candidates", sdp: many("a=candidate:%d 1 udp 1 192.0.2.1 9 typ host", 65), want: sdpneg.ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := nodeConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			n := must(sdpneg.New(cfg))(t)
			_, err := n.ApplyOffer(c.sdp)
			if !errors.Is(err, c.want) || !strings.Contains(fmt.Sprint(err), c.detail) {
				t.Fatalf("error %v, want %v with %q", err, c.want, c.detail)
			}
			if n.State() != sdpneg.Stable {
				t.Errorf("state %s after a refused offer", n.State())
			}
		})
	}
}

func TestApplyOfferReads(t *testing.T) {
	for _, c := range []struct {
		name    string
		section string
		check   func(*testing.T, sdpneg.Section)
	}{
		{"track with RTX", media("video", "0", "sendonly", sending("cam", 10)...), func(t *testing.T, s sdpneg.Section) {
			if !s.MemberSends || s.Member.StreamID != "stream" || s.Member.TrackID != "cam" || !slices.Equal(s.Member.SSRCs, []sdpneg.SSRC{{SSRC: 10, RTX: 11}}) {
				t.Errorf("sender %+v", s.Member)
			}
		}},
		{"msid of the ssrc lines", media("audio", "0", "sendrecv", "a=ssrc:7 msid:s t"), func(t *testing.T, s sdpneg.Section) {
			if s.Member.StreamID != "s" || s.Member.TrackID != "t" || s.Member.SSRCs[0].RTX != 0 {
				t.Errorf("sender %+v", s.Member)
			}
		}},
		{"paused layer", media("video", "0", "sendrecv", "a=rid:q send", "a=rid:h send", "a=simulcast:send q;~h"), func(t *testing.T, s sdpneg.Section) {
			if !slices.Equal(s.Member.RIDs, []sdpneg.RID{{ID: "q"}, {ID: "h", Paused: true}}) {
				t.Errorf("layers %+v", s.Member.RIDs)
			}
		}},
		{"rids without simulcast", media("video", "0", "sendrecv", "a=rid:a send", "a=rid:b send", "a=rid:c recv"), func(t *testing.T, s sdpneg.Section) {
			if !slices.Equal(s.Member.RIDs, []sdpneg.RID{{ID: "a"}, {ID: "b"}}) {
				t.Errorf("layers %+v", s.Member.RIDs)
			}
		}},
		{"receive only", media("video", "0", "recvonly", sending("cam", 10)...), func(t *testing.T, s sdpneg.Section) {
			if s.MemberSends || len(s.Member.SSRCs) != 0 || s.Stopped {
				t.Errorf("section %+v", s)
			}
		}},
		{"sendrecv declaring nothing", media("audio", "0", "sendrecv"), func(t *testing.T, s sdpneg.Section) {
			if s.MemberSends {
				t.Errorf("section %+v", s)
			}
		}},
		{"codecs and extensions", media("video", "0", "recvonly"), func(t *testing.T, s sdpneg.Section) {
			want := []sdpneg.Codec{{PayloadType: 96, Name: "VP8", ClockRate: 90000, RTX: 97, Feedback: []string{"nack", "nack pli", "goog-remb"}}}
			if fmt.Sprint(s.Codecs) != fmt.Sprint(want) || s.Extensions[sdpneg.URIRID] != 10 || s.Extensions[sdpneg.URIMid] != 1 || s.Extensions[sdpneg.URIAudioLevel] != 0 {
				t.Errorf("codecs %+v, extensions %v", s.Codecs, s.Extensions)
			}
		}},
		{"no codec in common", strings.Replace(media("video", "0", "sendrecv", sending("cam", 10)...), "VP8", "VP9", 1), func(t *testing.T, s sdpneg.Section) {
			if !s.Stopped || s.MemberSends || len(s.Codecs) != 0 {
				t.Errorf("section %+v", s)
			}
		}},
		{"data channel", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n", func(t *testing.T, s sdpneg.Section) {
			if !s.Stopped || s.Kind != "" {
				t.Errorf("section %+v", s)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t)
			u := must(n.ApplyOffer(desc(c.section, media("audio", "z", "recvonly"))))(t)
			c.check(t, u.Sections[0])
			answer := must(n.CreateAnswer())(t)
			port0 := strings.HasPrefix(answer[strings.Index(answer, "\r\nm=")+2:], "m="+strings.Fields(c.section)[0][2:]+" 0 ")
			if port0 != u.Sections[0].Stopped {
				t.Errorf("answer rejects the section: %v, want %v\n%s", port0, u.Sections[0].Stopped, answer)
			}
		})
	}
}

// TestBundleOnlySectionIsInUse: Firefox's offers write every section
// after the first of its kind as bundle-only, with port 0 (RFC 8843
// section 6); such a section is in use, and a receive-only one can carry
// a track of the node's in the answer. (It was once taken for a stopped
// section and rejected.)
func TestBundleOnlySectionIsInUse(t *testing.T) {
	n := must(sdpneg.New(nodeConfig()))(t)
	bundleOnly := strings.Replace(media("video", "2", "recvonly", "a=bundle-only"), "m=video 9 ", "m=video 0 ", 1)
	offer := desc(media("audio", "0", "sendrecv", sending("mic", 1000)...), media("video", "1", "sendrecv", sending("cam", 2000)...), bundleOnly)
	offer = strings.Replace(offer, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2", 1)
	upd, err := n.ApplyOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.Sections) != 3 || upd.Sections[2].Stopped || !upd.Sections[2].MemberReceives {
		t.Fatalf("sections %+v: the bundle-only one should be in use and receive", upd.Sections)
	}
	if err := n.AddTrackOn("2", sdpneg.Track{ID: "t1", StreamID: "s", Kind: sdpneg.Video, SSRC: 42}); err != nil {
		t.Fatal(err)
	}
	answer, err := n.CreateAnswer()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, "a=mid:2\r\n") || strings.Contains(answer, "m=video 0 ") || !strings.Contains(answer, "a=msid:s t1") {
		t.Fatalf("the answer does not send t1 on section 2:\n%s", answer)
	}
}
