package sdpneg_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// FuzzApplyOffer feeds remote offers, and answers to the node's offer,
// to a negotiator: any input is refused with an error or negotiated, and
// what the node writes back parses.
func FuzzApplyOffer(f *testing.F) {
	f.Add(first())
	f.Add(desc(media("audio", "0", "sendrecv", "a=ssrc:7 msid:s t"), stopped("video", "1"), "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"))
	f.Add(desc(media("video", "a", "sendonly", "a=rid:q send", "a=rid:h send", "a=simulcast:send q;~h", "a=extmap:300/sendonly urn:x")))
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sdp"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n := newNode(t)
		if _, err := n.ApplyOffer(raw); err != nil {
			if n.State() != sdpneg.Stable {
				t.Fatalf("state %s after refusing %v", n.State(), err)
			}
			return
		}
		answer, err := n.CreateAnswer()
		if err != nil {
			t.Fatal(err)
		}
		mustParse(t, answer)
		if err := n.AddTrack(track("x", sdpneg.Video, 5)); err != nil {
			t.Fatal(err)
		}
		offer, err := n.CreateOffer()
		if err != nil {
			t.Fatal(err)
		}
		mustParse(t, offer)
		// The same text as an answer to the node's offer.
		if _, err := n.ApplyAnswer(strings.ReplaceAll(raw, "a=setup:actpass", "a=setup:active")); err != nil && n.State() != sdpneg.HaveLocalOffer {
			t.Fatalf("state %s after refusing %v", n.State(), err)
		}
	})
}

// mustParse checks that the node wrote a description SDP parsers take.
func mustParse(t *testing.T, raw string) {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatalf("the node wrote what does not parse: %v\n%s", err, raw)
	}
}
