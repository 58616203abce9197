package media

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// nodePeer is a peer connection of the node's API, as Join makes them.
func nodePeer(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	m, err := newMetrics(nil, func() Load { return Load{} })
	if err != nil {
		t.Fatal(err)
	}
	var est, rtx sync.Map
	api, err := newAPI(webrtc.SettingEngine{}, &est, &rtx, m, newRTCPScheduler(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.newPeerConnection(webrtc.Configuration{}, newConnStreams(newSRTPBuffers(newPacketPool())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// A publisher's camera is taken in the first codec of its offer that the
// node knows: what browsers offer first for video is among them.
func TestNodeAnswersBrowsersVideoCodecs(t *testing.T) {
	h264 := func(pt uint8, pm, profile string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: webrtc.PayloadType(pt), RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=" + pm + ";profile-level-id=" + profile}}
	}
	vp9 := webrtc.RTPCodecParameters{PayloadType: 98, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}}
	vp8 := webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	av1 := webrtc.RTPCodecParameters{PayloadType: 45, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}}
	tests := []struct {
		name   string
		offer  []webrtc.RTPCodecParameters
		want   string // the answer's first video codec, as it appears in its rtpmap
		reject bool   // no codec in common
	}{
		{"Chromium", []webrtc.RTPCodecParameters{vp8, vp9, av1, h264(102, "1", "42001f")}, "VP8/90000", false},
		{"Safari", []webrtc.RTPCodecParameters{h264(104, "1", "640c1f"), h264(106, "1", "42e01f"), vp8}, "H264/90000", false},
		{"Safari, baseline only", []webrtc.RTPCodecParameters{h264(106, "1", "42e01f"), h264(108, "0", "42e01f")}, "H264/90000", false},
		{"Chromium, constrained baseline", []webrtc.RTPCodecParameters{h264(102, "1", "42001f")}, "H264/90000", false},
		{"VP9 only", []webrtc.RTPCodecParameters{vp9, av1}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			me := &webrtc.MediaEngine{}
			for _, c := range tt.offer {
				if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
					t.Fatal(err)
				}
			}
			pub, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			if _, err := pub.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
				t.Fatal(err)
			}
			offer, err := pub.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			node := nodePeer(t)
			if err := node.SetRemoteDescription(offer); err != nil {
				t.Fatal(err)
			}
			answer, err := node.CreateAnswer(nil)
			if err != nil {
				t.Fatal(err)
			}
			_, video, _ := strings.Cut(answer.SDP, "m=video ")
			if tt.reject {
				if !strings.HasPrefix(video, "0 ") {
					t.Fatalf("section accepted:\n%s", video)
				}
				return
			}
			i := strings.Index(video, "a=rtpmap:")
			if i < 0 || !strings.Contains(strings.SplitN(video[i:], "\r\n", 2)[0], " "+tt.want) {
				t.Fatalf("answer's first codec is not %s:\n%s", tt.want, video)
			}
		})
	}
}
