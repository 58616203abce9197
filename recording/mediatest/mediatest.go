// Package mediatest gives recording tests real encoded media and
// ffprobe's reading of the files they write. Debian's ffmpeg encodes the
// video; a test without ffmpeg skips, or fails under CI=1.
package mediatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// OpusSilence is one 20 ms Opus frame (CELT, fullband) of silence, as
// WebRTC sends while a microphone is muted.
var OpusSilence = []byte{0xf8, 0xff, 0xfe}

// Frame is one encoded video frame.
type Frame struct {
	Data []byte
	Key  bool
}

func tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required under CI: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return path
}

// Video encodes a test pattern of the given codec ("vp8", "vp9" or
// "h264") at 320x240 and fps frames per second for d, with a keyframe
// every keyEvery frames. H.264 frames are access units in Annex B form
// (start codes), as an encoder hands them to WebRTC.
func Video(t testing.TB, codec string, d time.Duration, fps, keyEvery int) []Frame {
	t.Helper()
	if codec == "h264" {
		return h264Video(t, d, fps, keyEvery)
	}
	ffmpeg := tool(t, "ffmpeg")
	enc := map[string]string{"vp8": "libvpx", "vp9": "libvpx-vp9"}[codec]
	out := filepath.Join(t.TempDir(), "video.ivf")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate="+strconv.Itoa(fps), "-t", strconv.FormatFloat(d.Seconds(), 'f', 3, 64),
		"-c:v", enc, "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-g", strconv.Itoa(keyEvery),
		"-keyint_min", strconv.Itoa(keyEvery), "-f", "ivf", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := ivfreader.NewWith(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	for {
		f, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, Frame{Data: f, Key: keyframe(codec, f)})
	}
}

func keyframe(codec string, f []byte) bool {
	if codec == "vp8" {
		return len(f) > 0 && f[0]&1 == 0
	}
	// VP9: frame marker 10, then profile bits; show_existing_frame; frame_type 0.
	return len(f) > 0 && f[0]&0xc0 == 0x80 && f[0]&0x08 == 0 && f[0]&0x04 == 0
}

// Stream is what ffprobe reports of one stream.
type Stream struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Frames    string `json:"nb_read_frames"`
}

// Probe is what ffprobe reports of a file.
type Probe struct {
	Streams []Stream `json:"streams"`
	Format  struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

// Duration is the file's duration.
func (p Probe) Duration() time.Duration {
	s, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return time.Duration(s * float64(time.Second))
}

// Stream returns the first stream of a codec type ("audio", "video").
func (p Probe) Stream(kind string) (Stream, bool) {
	for _, s := range p.Streams {
		if s.CodecType == kind {
			return s, true
		}
	}
	return Stream{}, false
}

// ProbeFile runs ffprobe on path, decoding every frame (-count_frames)
// and failing on any decoding error.
func ProbeFile(t testing.TB, path string) Probe {
	t.Helper()
	ffprobe := tool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var p Probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return p
}

func h264Video(t testing.TB, d time.Duration, fps, keyEvery int) []Frame {
	t.Helper()
	ffmpeg := tool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "video.h264")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate="+strconv.Itoa(fps), "-t", strconv.FormatFloat(d.Seconds(), 'f', 3, 64),
		"-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "300k",
		"-g", strconv.Itoa(keyEvery), "-keyint_min", strconv.Itoa(keyEvery), "-sc_threshold", "0",
		"-bsf:v", "h264_metadata=aud=insert", "-f", "h264", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	var cur Frame
	for _, nal := range SplitAnnexB(raw) {
		switch nal[0] & 0x1f {
		case 9: // access unit delimiter: a new frame
			if len(cur.Data) > 0 {
				frames = append(frames, cur)
			}
			cur = Frame{}
			continue
		case 5:
			cur.Key = true
		}
		cur.Data = append(cur.Data, 0, 0, 0, 1)
		cur.Data = append(cur.Data, nal...)
	}
	if len(cur.Data) > 0 {
		frames = append(frames, cur)
	}
	return frames
}

// SplitAnnexB returns the NAL units of an Annex B stream.
func SplitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				for end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// AVC turns an Annex B access unit into AVC form (4-byte lengths), as
// Matroska keeps H.264.
func AVC(annexB []byte) []byte {
	var out []byte
	for _, nal := range SplitAnnexB(annexB) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(nal)))
		out = append(out, nal...)
	}
	return out
}
