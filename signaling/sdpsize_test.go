package signaling

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/sfulink"
)

// largeOffer is an offer with a camera and a microphone section for each
// of publishers, made by pion with its default codecs: each section lists
// them all, as Chromium's later offers do (Chromium's are 1,065,944 bytes
// for 199 publishers; see docs/benchmarks/sfu.md).
func largeOffer(t *testing.T, publishers int) string {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range publishers {
		for _, c := range []webrtc.RTPCodecCapability{{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, {MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}} {
			tr, err := webrtc.NewTrackLocalStaticRTP(c, fmt.Sprintf("%s-%d", c.MimeType, i), fmt.Sprintf("m%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
				t.Fatal(err)
			}
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

// An offer of a member receiving a full room's publications is relayed;
// anything else that large is refused as too large, and a member sending
// such offers in a loop is rate-limited after a few.
func TestLargeRoomOfferIsRelayed(t *testing.T) {
	big := largeOffer(t, sdpMaxPublishers-1)
	t.Logf("offer for %d publishers: %d bytes, %d as a message", sdpMaxPublishers-1, len(big), len(msg("offer", "to", "u_b", "sdp", big)))
	tests := []struct {
		name string
		raw  []byte
		want string // the error code, "" when relayed
	}{
		{"offer for the largest room", msg("offer", "to", "u_b", "sdp", big), ""},
		{"answer for the largest room", msg("answer", "to", "u_b", "sdp", big), ""},
		{"offer for a dozen publishers", msg("offer", "to", "u_b", "sdp", largeOffer(t, 12)), ""},
		{"chat just over the message limit", []byte(`{"type":"chat","text":"` + strings.Repeat("a", MaxMessageBytes) + `"}`), "too-large"},
		{"unknown type of an offer's size", msg("teleport", "to", "u_b", "sdp", big), "too-large"},
		{"offer over the description limit", msg("offer", "to", "u_b", "sdp", big+strings.Repeat("a=x\r\n", (MaxSDPBytes-len(big))/5+1)), "bad-sdp"},
		{"offer over the message limit", msg("offer", "to", "u_b", "sdp", big+strings.Repeat("a=x\r\n", MaxSDPMessageBytes/5)), "too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			r, a, ca := f.join(t, "u_a", true)
			_, _, cb := f.join(t, "u_b", true)
			ca.take()
			cb.take()
			r.Handle(a, tt.raw)
			if code := errCode(ca); code != tt.want {
				t.Fatalf("error %q, want %q", errCode(ca), tt.want)
			}
			var env envelope
			if err := json.Unmarshal(tt.raw, &env); err != nil {
				t.Fatal(err)
			}
			if got := cb.last(env.Type); (got != nil) != (tt.want == "") {
				t.Fatalf("relayed: %v, want %v", got != nil, tt.want == "")
			}
		})
	}
}

// Large offers cost their size in rate budget: a loop of them is
// rate-limited long before as many small messages would be. The loop runs
// on a still clock (synctest), so how long it takes refills nothing.
func TestLargeOffersCostTheirSize(t *testing.T) {
	raw := msg("offer", "to", "u_b", "sdp", largeOffer(t, sdpMaxPublishers-1))
	synctest.Test(t, func(t *testing.T) {
		f := newFixture()
		r, a, ca := f.join(t, "u_a", true)
		f.join(t, "u_b", true)
		ca.take()
		relayed := 0
		limited := false
		for range 200 {
			r.Handle(a, raw)
			if code := errCode(ca); code != "" {
				if code != "rate-limited" {
					t.Fatalf("error %q", code)
				}
				limited = true
				break
			}
			relayed++
		}
		// A burst of 200 small messages passes; of these, 200/cost at most.
		if !limited || relayed < 2 || relayed > 200/messageCost(len(raw)) {
			t.Fatalf("%d offers of %d bytes relayed before rate-limited", relayed, len(raw))
		}
	})
}

// An offer or answer the server takes must cross the link to a remote
// media node, which closes on a message beyond sfulink.MaxMessage, however
// the description was made to grow when encoded in JSON.
func TestLargestOfferCrossesTheNodeLink(t *testing.T) {
	for _, filler := range []string{"a=x\r\n", "\n", "<", "&>", "\x01", "\xff", "\u2028", "é", "a"} {
		t.Run(fmt.Sprintf("%q", filler), func(t *testing.T) {
			const head = "v=0\r\na=fingerprint:sha-256 AB:CD\r\n"
			n := sort.Search(MaxSDPBytes+1, func(n int) bool { return !sdpFits(head + strings.Repeat(filler, n)) }) - 1
			sdp := head + strings.Repeat(filler, n)
			link, err := json.Marshal(map[string]any{"type": "offer", "sid": strings.Repeat("s", 64), "sdp": sdp})
			if err != nil {
				t.Fatal(err)
			}
			if len(link) > sfulink.MaxMessage {
				t.Fatalf("an offer of %d bytes is taken and takes %d bytes on the node link, which takes %d", len(sdp), len(link), sfulink.MaxMessage)
			}
		})
	}
}
