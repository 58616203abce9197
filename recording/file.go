package recording

import (
	"fmt"
	"slices"
	"time"

	"github.com/openconsult/openconsult/recording/webm"
)

// When a member's file starts: at the first video keyframe when it has
// video and audio, or video alone for videoWait; otherwise once audio ran
// audioWait without a video track being announced; in any case after
// openAfter (video without a keyframe by then is written from its first
// keyframe on). The node announces a member's tracks one at a time, so
// a keyframe can come before the member's audio is announced: the wait
// keeps both in one file.
const (
	audioWait = 2000 // ms
	videoWait = 1000 // ms
	openAfter = 5000 // ms
	// pendingCap bounds the frames a file holds before it starts.
	pendingCap = 4 << 20
	// keyframeEvery: a video cluster this old asks for a keyframe, so
	// the next cluster starts with one (seeking lands on keyframes).
	keyframeEvery = 3000 // ms
)

// file is one member's WebM file, written while the recording runs.
type file struct {
	id      string
	member  string
	objects string        // object name prefix
	zero    time.Duration // its start, since the recording started
	audio   *trackPipe
	video   *trackPipe

	mux          *webm.Muxer // nil until the file starts
	pending      []pendingFrame
	pendingBytes int
	seq          int    // of the next segment
	header       string // object holding the stored header
	asked        bool   // a keyframe was asked for the open cluster
	done         bool
}

type pendingFrame struct {
	t *trackPipe
	frame
}

func (f *file) tracks() []*trackPipe {
	var out []*trackPipe
	for _, t := range []*trackPipe{f.audio, f.video} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// accepts reports whether t can join this file: it has not started and
// has no track of t's kind.
func (f *file) accepts(t *trackPipe) bool {
	if f.mux != nil || f.done {
		return false
	}
	if t.kind == webm.Audio {
		return f.audio == nil
	}
	return f.video == nil
}

func (f *file) add(t *trackPipe) {
	if t.kind == webm.Audio {
		f.audio = t
	} else {
		f.video = t
	}
	t.file = f
}

// ended reports whether every track of the file ended.
func (f *file) ended() bool {
	for _, t := range f.tracks() {
		if !t.ended {
			return false
		}
	}
	return true
}

// kinds names the file's content for the records.
func (f *file) kinds() string {
	switch {
	case f.audio != nil && f.video != nil:
		return "audio+video"
	case f.video != nil:
		return "video"
	}
	return "audio"
}

// ready reports whether the file can start at frame time tc (since the
// recording started).
func (f *file) ready(tc int64) bool {
	age := tc - f.zero.Milliseconds()
	switch {
	case age >= openAfter:
		return true
	case f.video != nil:
		return f.video.width > 0 && (f.audio != nil || age >= videoWait)
	default:
		return age >= audioWait
	}
}

// muxer returns the muxer for the file's tracks, numbering them.
func (f *file) muxer() (*webm.Muxer, error) {
	var tracks []webm.Track
	for i, t := range f.tracks() {
		t.num = i + 1
		switch t.kind {
		case webm.Audio:
			tracks = append(tracks, webm.Track{Kind: webm.Audio, CodecID: t.codec, SampleRate: int(t.clock), Channels: max(int(t.info.Codec.Channels), 1)})
		case webm.Video:
			w, h := t.width, t.height
			if w == 0 || h == 0 {
				w, h = 640, 480 // no keyframe yet: the frames say their size
			}
			tracks = append(tracks, webm.Track{Kind: webm.Video, CodecID: t.codec, Width: w, Height: h, CodecPrivate: t.private})
		}
	}
	m, err := webm.NewMuxer(tracks)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", f.id, err)
	}
	return m, nil
}

// hold keeps a frame until the file starts, within pendingCap.
func (f *file) hold(t *trackPipe, fr frame) {
	if f.pendingBytes+len(fr.data) > pendingCap {
		return
	}
	f.pending = append(f.pending, pendingFrame{t, fr})
	f.pendingBytes += len(fr.data)
}

// takePending returns the held frames in time order.
func (f *file) takePending() []pendingFrame {
	p := f.pending
	slices.SortStableFunc(p, func(a, b pendingFrame) int { return int(a.tc - b.tc) })
	f.pending, f.pendingBytes = nil, 0
	return p
}

func (f *file) objectName(seq int) string { return fmt.Sprintf("%s/%06d", f.objects, seq) }
