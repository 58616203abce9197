// Package webm writes WebM (Matroska) files from encoded frames, without
// transcoding: Opus audio and VP8 or VP9 video, one file per recorded
// member; H.264 video makes a Matroska file (WebM has no H.264). It is built for files written while they grow and stored as a
// sequence of pieces: a Header of fixed size, then each Cluster as it
// closes, then the Cues; the finished file's Header, written again over
// the first piece, carries the duration, the segment's size and where the
// Cues are, so a player knows the length and seeks without scanning.
// A file whose writing stopped early (its last pieces never stored) is
// still a valid WebM stream without duration.
package webm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is a track's media kind.
type Kind uint8

// Kinds of tracks.
const (
	Video Kind = 1
	Audio Kind = 2
)

// Codec IDs a Track may use.
const (
	CodecOpus = "A_OPUS"
	CodecVP8  = "V_VP8"
	CodecVP9  = "V_VP9"
	CodecH264 = "V_MPEG4/ISO/AVC" // frames with 4-byte NAL unit lengths
)

// Track describes one track of a file.
type Track struct {
	Kind    Kind
	CodecID string
	// Video: frame size in pixels.
	Width, Height int
	// CodecPrivate: H.264's AVCDecoderConfigurationRecord (AVCConfig).
	CodecPrivate []byte
	// Audio: sampling rate and channels.
	SampleRate int
	Channels   int
}

// Cluster bounds: a cluster starts at a video keyframe once it is at
// least MinCluster long, and in any case before MaxCluster (so a stored
// piece never holds more than a few seconds), or when it holds MaxBytes.
const (
	MinCluster = 2000 // ms
	MaxCluster = 6000 // ms
	MaxBytes   = 8 << 20
)

// Errors of writing.
var (
	ErrTrack    = errors.New("webm: no such track")
	ErrTracks   = errors.New("webm: a file has one or two tracks: audio (Opus) and video (VP8, VP9 or H.264)")
	ErrFinished = errors.New("webm: the file is finished")
)

// Muxer lays out one file. Not safe for concurrent use.
type Muxer struct {
	tracks  []Track
	video   int // number of the video track, 0 for none
	header  int // length of Header
	docType string

	body     []byte // current cluster's content after its Timecode
	clusterT int64  // its timecode
	open     bool   // a cluster is being filled
	keyStart bool   // it starts with a video keyframe

	written int64 // bytes of clusters emitted, after the header
	cues    []cue
	last    []int64 // last timecode per track, -1 before the first frame
	endT    int64   // end of the last frame of any track
	cuesAt  int64   // where the Cues start after the header, -1 before Cues
	final   bool    // Cues was called: nothing more can be written
}

type cue struct {
	time  int64
	track int
	pos   int64 // cluster position in the segment
}

// NewMuxer returns a muxer of a file of the given tracks, numbered from 1.
func NewMuxer(tracks []Track) (*Muxer, error) {
	if len(tracks) == 0 || len(tracks) > 2 {
		return nil, ErrTracks
	}
	m := &Muxer{tracks: tracks, last: make([]int64, len(tracks)), cuesAt: -1, docType: "webm"}
	for i, t := range tracks {
		m.last[i] = -1
		switch {
		case t.Kind == Audio && t.CodecID == CodecOpus:
		case t.Kind == Video && (t.CodecID == CodecVP8 || t.CodecID == CodecVP9 || t.CodecID == CodecH264) && m.video == 0:
			m.video = i + 1
			if t.CodecID == CodecH264 {
				m.docType = "matroska"
			}
		default:
			return nil, fmt.Errorf("%w: track %d is %d %q", ErrTracks, i+1, t.Kind, t.CodecID)
		}
	}
	m.header = len(m.Header(false))
	return m, nil
}

// Tracks returns the file's tracks.
func (m *Muxer) Tracks() []Track { return m.tracks }

// HasVideo reports whether the file has a video track.
func (m *Muxer) HasVideo() bool { return m.video != 0 }

// ClusterAge is how long the open cluster is at timecode t (0 if none).
func (m *Muxer) ClusterAge(t int64) int64 {
	if !m.open {
		return 0
	}
	return t - m.clusterT
}

// Duration is the end of the last frame written, in milliseconds.
func (m *Muxer) Duration() int64 { return m.endT }

// Write adds one frame of track (1-based) at timecode t (milliseconds
// from the file's start; earlier than the track's previous frame is
// taken as that frame's time). When the frame starts a new cluster, the
// closed one is returned, ready to store.
func (m *Muxer) Write(track int, t int64, key bool, frame []byte) ([]byte, error) {
	if track < 1 || track > len(m.tracks) {
		return nil, ErrTrack
	}
	if m.final {
		return nil, ErrFinished
	}
	t = max(t, m.last[track-1], 0)
	m.last[track-1] = t
	isVideo := track == m.video
	var closed []byte
	if m.needCluster(t, isVideo && key, len(frame)) {
		closed = m.Flush()
		m.open, m.clusterT = true, t
		m.keyStart = isVideo && key
		if m.video == 0 || m.keyStart {
			m.cues = append(m.cues, cue{time: t, track: track, pos: int64(m.header-m.segmentStart()) + m.written})
		}
	}
	rel := max(t-m.clusterT, -32768) // a late frame of the other track
	m.body = appendID(m.body, idSimpleBlock)
	m.body = appendSize(m.body, uint64(4+len(frame)))
	m.body = appendSizeN(m.body, uint64(track), 1)
	m.body = binary.BigEndian.AppendUint16(m.body, uint16(int16(rel)))
	flags := byte(0)
	if key || !isVideo {
		flags = 0x80
	}
	m.body = append(m.body, flags)
	m.body = append(m.body, frame...)
	frameLen := int64(20) // an Opus frame of WebRTC
	if isVideo {
		frameLen = 33
	}
	m.endT = max(m.endT, t+frameLen)
	return closed, nil
}

// needCluster decides whether a frame at t starts a new cluster.
func (m *Muxer) needCluster(t int64, videoKey bool, n int) bool {
	if !m.open {
		return true
	}
	age := t - m.clusterT
	switch {
	case age >= MaxCluster || age > 32767 || len(m.body)+n > MaxBytes:
		return true
	case m.video != 0:
		return videoKey && age >= MinCluster
	default:
		return age >= MinCluster
	}
}

// Flush closes the open cluster and returns it (nil when none is open).
func (m *Muxer) Flush() []byte {
	if !m.open {
		return nil
	}
	var tc []byte
	tc = appendUint(tc, idTimecode, uint64(m.clusterT))
	out := appendID(make([]byte, 0, 12+len(tc)+len(m.body)), idCluster)
	out = appendSize(out, uint64(len(tc)+len(m.body)))
	out = append(out, tc...)
	out = append(out, m.body...)
	m.written += int64(len(out))
	m.body, m.open = m.body[:0], false
	return out
}

// Cues closes the open cluster and returns it followed by the Cues: the
// last piece of a finished file. Header(true) must be stored after it.
func (m *Muxer) Cues() []byte {
	out := m.Flush()
	m.final = true
	var body []byte
	for _, c := range m.cues {
		var pos []byte
		pos = appendUint(pos, idCueTrack, uint64(c.track))
		pos = appendUint(pos, idCueClusterPosition, uint64(c.pos))
		var p []byte
		p = appendUint(p, idCueTime, uint64(c.time))
		p = appendElem(p, idCueTrackPositions, pos)
		body = appendElem(body, idCuePoint, p)
	}
	if len(m.cues) == 0 {
		return out
	}
	cues := appendElem(nil, idCues, body)
	m.cuesAt = m.written
	m.written += int64(len(cues))
	return append(out, cues...)
}

// segmentStart is the offset of the Segment's content in the file.
func (m *Muxer) segmentStart() int { return len(ebmlHeader(m.docType)) + 4 + 8 }

// DocType is "webm", or "matroska" for a file with H.264.
func (m *Muxer) DocType() string { return m.docType }

func ebmlHeader(docType string) []byte {
	var b []byte
	b = appendUint(b, idEBMLVersion, 1)
	b = appendUint(b, idEBMLReadVersion, 1)
	b = appendUint(b, idEBMLMaxIDLength, 4)
	b = appendUint(b, idEBMLMaxSizeLength, 8)
	b = appendString(b, idDocType, docType)
	b = appendUint(b, idDocTypeVersion, 4)
	b = appendUint(b, idDocTypeReadVersion, 2)
	return appendElem(nil, idEBML, b)
}
