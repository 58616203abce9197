package recording

import (
	"encoding/binary"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording/webm"
)

// FuzzTrackPipe feeds arbitrary RTP packets (sequence number, timestamp,
// marker and payload, as a publisher controls them) through a track's
// pipeline into a file's muxer: nothing panics, frames keep their order
// in time per track, and video is never written before a keyframe.
func FuzzTrackPipe(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1, 4, 0x10, 0x10, 0x02, 0x00}, true)
	f.Add([]byte{0, 1, 0, 0, 0, 0, 1, 3, 0xf8, 0xff, 0xfe, 0, 2, 0, 0, 3, 0xc0, 0, 3, 0xf8, 0xff, 0xfe}, false)
	f.Add([]byte{2, 1, 0x80, 0, 0, 0, 9, 0x18, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 2, 2, 0x80, 0, 0, 0, 2, 0x65, 0x88}, true)
	f.Fuzz(func(t *testing.T, data []byte, video bool) {
		mime, kind := webrtc.MimeTypeOpus, webrtc.RTPCodecTypeAudio
		if video {
			mime, kind = webrtc.MimeTypeVP8, webrtc.RTPCodecTypeVideo
		}
		if video && len(data) > 0 {
			mime = []string{webrtc.MimeTypeVP8, webrtc.MimeTypeVP9, webrtc.MimeTypeH264}[int(data[0])%3]
		}
		info := media.RecordedTrack{MemberID: "m", TrackID: "t", Kind: kind, Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}}}
		p := newTrackPipe(info, func() {})
		codec, k := codecOf(info)
		tracks := []webm.Track{{Kind: k, CodecID: codec, Width: 16, Height: 16, SampleRate: 48000, Channels: 1}}
		m, err := webm.NewMuxer(tracks)
		if err != nil {
			t.Fatal(err)
		}
		last := int64(-1 << 62)
		emit := func(fr frame) {
			if k == webm.Video && last == -1<<62 && !fr.key {
				t.Fatal("video written before a keyframe")
			}
			last = fr.tc
			if _, err := m.Write(1, fr.tc, fr.key, fr.data); err != nil {
				t.Fatal(err)
			}
		}
		// Each packet: seq (2), ts (4 with the marker in its top bit),
		// payload length (1), payload.
		for len(data) >= 7 {
			seq := binary.BigEndian.Uint16(data)
			ts := binary.BigEndian.Uint32(data[2:])
			n := min(int(data[6]), len(data)-7)
			pk := &packet{seq: seq, ts: ts &^ (1 << 31), marker: ts>>31 == 1, payload: append([]byte(nil), data[7:7+n]...), at: 0}
			p.push(pk, emit)
			data = data[7+n:]
		}
		p.flush(emit)
		m.Cues()
		if h := m.Header(true); len(h) != len(m.Header(false)) {
			t.Fatal("header size changed")
		}
	})
}
