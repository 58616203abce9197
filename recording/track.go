package recording

import (
	"strings"
	"time"

	"github.com/pion/rtp/codecs"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording/webm"
)

// frame is one encoded frame ready for a file.
type frame struct {
	tc   int64 // milliseconds since the file's start
	key  bool
	data []byte
}

// codecOf maps a recorded track's codec to its WebM codec, "" for one
// that is not recorded.
func codecOf(t media.RecordedTrack) (string, webm.Kind) {
	switch strings.ToLower(t.Codec.MimeType) {
	case "audio/opus":
		return webm.CodecOpus, webm.Audio
	case "video/vp8":
		return webm.CodecVP8, webm.Video
	case "video/vp9":
		return webm.CodecVP9, webm.Video
	case "video/h264":
		return webm.CodecH264, webm.Video
	}
	return "", 0
}

// trackPipe turns one track's RTP packets into frames: it reorders them,
// depacketizes, drops video up to a keyframe at the start and after a
// loss (asking for one), and converts RTP time to milliseconds.
type trackPipe struct {
	info  media.RecordedTrack
	codec string
	kind  webm.Kind
	clock int64
	file  *file
	num   int // the track's number in its file, once the file is open
	ended bool

	jit jitter

	// RTP time: the first packet's timestamp is its arrival time.
	anchor  time.Duration
	baseTS  int64
	lastExt int64
	timed   bool

	// video frame being assembled
	buf      []byte
	bufTS    uint32
	have     bool
	broken   bool
	waitKey  bool
	askedAt  int64 // tc of the last keyframe request
	lastTC   int64 // of the last packet
	width    int
	height   int
	private  []byte // H.264: the decoder configuration of the last keyframe
	h264     *codecs.H264Packet
	keyframe func() // asks the publisher for a keyframe
}

// maxFrame bounds one video frame: a publisher cannot make the recorder
// hold more (a larger frame is dropped as lost).
const maxFrame = 8 << 20

func newTrackPipe(info media.RecordedTrack, keyframe func()) *trackPipe {
	codec, kind := codecOf(info)
	clock := int64(info.Codec.ClockRate)
	if clock <= 0 {
		clock = 90000
		if kind == webm.Audio {
			clock = 48000
		}
	}
	depth := 64
	if kind == webm.Audio {
		depth = 8
	}
	return &trackPipe{info: info, codec: codec, kind: kind, clock: clock, jit: jitter{depth: depth},
		waitKey: kind == webm.Video, askedAt: -1 << 62, keyframe: keyframe}
}

// push takes one packet; emit gets the frames it completes.
func (t *trackPipe) push(p *packet, emit func(frame)) {
	t.jit.push(p, func(p *packet) { t.packet(p, emit) }, t.lost)
}

// flush passes on what the jitter buffer holds.
func (t *trackPipe) flush(emit func(frame)) {
	t.jit.flush(func(p *packet) { t.packet(p, emit) }, t.lost)
}

func (t *trackPipe) lost() {
	if t.kind != webm.Video {
		return
	}
	t.h264 = nil
	t.broken = t.have
	t.waitKey = true
	t.askKeyframe(t.lastTC)
}

// askKeyframe asks for a keyframe unless one was asked less than a
// second before tc (the answer to that one is on its way).
func (t *trackPipe) askKeyframe(tc int64) {
	if tc-t.askedAt < 1000 {
		return
	}
	t.askedAt = tc
	t.keyframe()
}

// tc converts an RTP timestamp to milliseconds since the recording's
// start.
func (t *trackPipe) tc(p *packet) int64 {
	if !t.timed {
		t.timed, t.anchor, t.baseTS, t.lastExt = true, p.at, int64(p.ts), int64(p.ts)
	}
	ext := t.lastExt + int64(int32(p.ts-uint32(t.lastExt)))
	t.lastExt = max(t.lastExt, ext)
	return t.anchor.Milliseconds() + (ext-t.baseTS)*1000/t.clock
}

func (t *trackPipe) packet(p *packet, emit func(frame)) {
	tc := t.tc(p)
	t.lastTC = tc
	if t.kind == webm.Audio {
		if len(p.payload) > 0 {
			emit(frame{tc: tc, key: true, data: p.payload})
		}
		return
	}
	if t.have && p.ts != t.bufTS { // the previous frame lost its end
		t.lost()
		t.have, t.buf = false, nil
	}
	if !t.have {
		t.h264 = nil // a new frame: no fragment of another one is kept
	}
	payload, start, ok := t.depacketize(p.payload)
	if !ok {
		t.lost()
		return
	}
	if !t.have {
		t.have, t.bufTS, t.broken = true, p.ts, !start
		t.buf = make([]byte, 0, len(payload)*4)
	}
	if len(t.buf)+len(payload) > maxFrame {
		t.broken = true
	} else {
		t.buf = append(t.buf, payload...)
	}
	if !p.marker {
		return
	}
	data, broken := t.buf, t.broken
	t.have, t.buf, t.broken = false, nil, false
	if broken {
		return
	}
	key, w, h := webm.Keyframe(t.codec, data)
	if key {
		t.waitKey = false
		if w > 0 && h > 0 {
			t.width, t.height = w, h
		}
		if cfg, ok := webm.AVCConfig(data); ok && t.codec == webm.CodecH264 {
			t.private = cfg
		}
	}
	if t.waitKey {
		t.askKeyframe(tc)
		return
	}
	emit(frame{tc: tc, key: key, data: data})
}

// depacketize strips the payload descriptor; start reports a packet that
// begins a frame.
func (t *trackPipe) depacketize(b []byte) (payload []byte, start bool, ok bool) {
	switch t.codec {
	case webm.CodecVP8:
		var v codecs.VP8Packet
		out, err := v.Unmarshal(b)
		return out, v.S == 1 && v.PID == 0, err == nil
	case webm.CodecVP9:
		var v codecs.VP9Packet
		out, err := v.Unmarshal(b)
		return out, v.B, err == nil
	case webm.CodecH264:
		// AVC form (4-byte lengths); a fragmented unit comes out whole
		// with the packet that ends it.
		if t.h264 == nil {
			t.h264 = &codecs.H264Packet{IsAVC: true}
		}
		out, err := t.h264.Unmarshal(b)
		return out, true, err == nil
	}
	return nil, false, false
}
