package recording

import (
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/recording/webm"
)

// BenchmarkRecordVideo measures what recording costs per RTP packet of a
// VP8 track (300 kbit/s, 30 frames per second): reordering, depacketizing
// and muxing into WebM clusters, storage left out. It reports the bytes
// of WebM written per second of media.
func BenchmarkRecordVideo(b *testing.B) {
	frames := mediatest.Video(b, "vp8", 10*time.Second, 30, 90)
	var pay codecs.VP8Payloader
	var packets []packet
	seq := uint16(0)
	for i, f := range frames {
		ps := pay.Payload(1100, f.Data)
		for j, p := range ps {
			packets = append(packets, packet{seq: seq, ts: uint32(i) * 3000, marker: j == len(ps)-1, payload: p})
			seq++
		}
	}
	info := media.RecordedTrack{Kind: webrtc.RTPCodecTypeVideo, Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}}
	b.ReportAllocs()
	b.ResetTimer()
	var written int64
	for range b.N/len(packets) + 1 {
		p := newTrackPipe(info, func() {})
		m, _ := webm.NewMuxer([]webm.Track{{Kind: webm.Video, CodecID: webm.CodecVP8, Width: 320, Height: 240}})
		for i := range packets {
			pk := packets[i]
			p.push(&pk, func(fr frame) {
				c, _ := m.Write(1, fr.tc, fr.key, fr.data)
				written += int64(len(c))
			})
		}
		written += int64(len(m.Cues()))
	}
	b.ReportMetric(float64(written)/float64(b.N/len(packets)+1)/10, "webm-bytes/s-of-media")
	b.ReportMetric(float64(len(packets))/10, "packets/s-of-media")
}
