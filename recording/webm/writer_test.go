package webm_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/openconsult/openconsult/recording/mediatest"
	"github.com/openconsult/openconsult/recording/webm"
)

// mux writes d of video frames (30 per second) and Opus frames (50 per
// second) interleaved by time and returns the file's pieces, finished or
// not.
func mux(t *testing.T, codec string, video []mediatest.Frame, d time.Duration, finish bool) []byte {
	t.Helper()
	var private []byte
	if codec == webm.CodecH264 {
		avc := make([]mediatest.Frame, len(video))
		for i, f := range video {
			avc[i] = mediatest.Frame{Data: mediatest.AVC(f.Data), Key: f.Key}
		}
		video = avc
		var ok bool
		if private, ok = webm.AVCConfig(video[0].Data); !ok {
			t.Fatal("no parameter sets in the first frame")
		}
	}
	key, w, h := webm.Keyframe(codec, video[0].Data)
	if !key || w != 320 || h != 240 {
		t.Fatalf("first frame: keyframe %v, %dx%d; want a 320x240 keyframe", key, w, h)
	}
	m, err := webm.NewMuxer([]webm.Track{{Kind: webm.Audio, CodecID: webm.CodecOpus, SampleRate: 48000, Channels: 2},
		{Kind: webm.Video, CodecID: codec, Width: w, Height: h, CodecPrivate: private}})
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	clusters := 0
	write := func(track int, ts int64, key bool, f []byte) {
		c, err := m.Write(track, ts, key, f)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			clusters++
		}
		body = append(body, c...)
	}
	vi := 0
	for a := int64(0); a < d.Milliseconds(); a += 20 {
		for ; vi < len(video) && int64(vi)*1000/30 <= a; vi++ {
			write(2, int64(vi)*1000/30, video[vi].Key, video[vi].Data)
		}
		write(1, a, true, mediatest.OpusSilence)
	}
	if !finish {
		return append(m.Header(false), append(body, m.Flush()...)...)
	}
	body = append(body, m.Cues()...)
	head := m.Header(true)
	if len(head) != len(m.Header(false)) {
		t.Fatalf("final header of %d bytes replaces one of %d", len(head), len(m.Header(false)))
	}
	if clusters < int(d/(webm.MaxCluster*time.Millisecond)) {
		t.Fatalf("%d clusters for %v", clusters, d)
	}
	return append(head, body...)
}

func TestMuxedFileProbes(t *testing.T) {
	const d = 7 * time.Second
	for _, tt := range []struct {
		codec, ffmpeg, name string
		finish              bool
	}{
		{webm.CodecVP8, "vp8", "vp8", true},
		{webm.CodecVP9, "vp9", "vp9", true},
		{webm.CodecH264, "h264", "h264", true},
		{webm.CodecVP8, "vp8", "vp8", false},
	} {
		t.Run(tt.ffmpeg+"/finished="+strconv.FormatBool(tt.finish), func(t *testing.T) {
			video := mediatest.Video(t, tt.ffmpeg, d, 30, 90)
			path := filepath.Join(t.TempDir(), "f.webm")
			if err := os.WriteFile(path, mux(t, tt.codec, video, d, tt.finish), 0o600); err != nil {
				t.Fatal(err)
			}
			p := mediatest.ProbeFile(t, path)
			if p.Format.FormatName != "matroska,webm" {
				t.Errorf("format %q", p.Format.FormatName)
			}
			a, okA := p.Stream("audio")
			v, okV := p.Stream("video")
			if !okA || !okV || a.CodecName != "opus" || v.CodecName != tt.name || v.Width != 320 || v.Height != 240 {
				t.Fatalf("streams %+v", p.Streams)
			}
			if v.Frames != strconv.Itoa(len(video)) || a.Frames != strconv.Itoa(int(d/(20*time.Millisecond))) {
				t.Errorf("decoded %s video frames of %d, %s audio frames", v.Frames, len(video), a.Frames)
			}
			// A file whose writing stopped before its end has no duration
			// yet still plays all it holds.
			if got := p.Duration(); tt.finish && (got < d-100*time.Millisecond || got > d+100*time.Millisecond) {
				t.Errorf("duration %v, want %v", got, d)
			}
		})
	}
}

func TestMuxerRefusesOtherCodecs(t *testing.T) {
	for _, tracks := range [][]webm.Track{
		nil,
		{{Kind: webm.Video, CodecID: "V_MPEG4/ISO/HEVC"}},
		{{Kind: webm.Video, CodecID: webm.CodecVP8}, {Kind: webm.Video, CodecID: webm.CodecVP9}},
		{{Kind: webm.Audio, CodecID: webm.CodecOpus}, {Kind: webm.Audio, CodecID: webm.CodecOpus}, {Kind: webm.Video, CodecID: webm.CodecVP8}},
	} {
		if _, err := webm.NewMuxer(tracks); err == nil {
			t.Errorf("NewMuxer(%+v) accepted", tracks)
		}
	}
}
