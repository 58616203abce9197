package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/media"
)

// With -record the node records every consult through media.Recorder, as
// a recorded consult runs, into a counting sink. The sink does the work
// of a WebM writer's hot path without its container details: it copies
// each packet's payload into the frame being assembled (a video frame
// ends at the RTP marker bit, every audio packet is a frame) and writes
// each frame, with the 12 bytes a Matroska SimpleBlock and its share of a
// cluster add, to io.Discard. It measures what recording costs the node
// itself (the recorder subscriber, the copies, a frame buffer per track),
// not encryption or storage, which the recording package adds.

// blockOverhead is what a WebM file adds to each frame: the SimpleBlock's
// element id and size (about 4 bytes), its track number, timecode and
// flags (4), and a share of the cluster headers.
const blockOverhead = 12

// recTotals are the counting sinks' figures in one process.
type recTotals struct {
	Recordings int64 `json:"recordings"`
	Tracks     int64 `json:"tracks"`
	Packets    int64 `json:"packets"`
	Frames     int64 `json:"frames"`
	Bytes      int64 `json:"bytes"`
	Gaps       int64 `json:"gaps"` // breaks in a track's sequence numbers
	Ended      int64 `json:"ended"`
}

// recCounters are the live counters behind recTotals.
type recCounters struct {
	recordings, tracks, packets, frames, bytes, gaps, ended atomic.Int64
}

func (c *recCounters) totals() recTotals {
	return recTotals{Recordings: c.recordings.Load(), Tracks: c.tracks.Load(), Packets: c.packets.Load(),
		Frames: c.frames.Load(), Bytes: c.bytes.Load(), Gaps: c.gaps.Load(), Ended: c.ended.Load()}
}

// countingSink is a media.RecordSink that counts what a WebM writer would
// write.
type countingSink struct{ c *recCounters }

func (s countingSink) Track(t media.RecordedTrack) media.TrackSink {
	s.c.tracks.Add(1)
	return &countingTrack{c: s.c, video: t.Kind == webrtc.RTPCodecTypeVideo}
}

func (s countingSink) Ended(error) { s.c.ended.Add(1) }

// countingTrack assembles one track's frames; its methods run on the
// track's one goroutine.
type countingTrack struct {
	c       *recCounters
	video   bool
	frame   []byte
	lastSeq uint16
	started bool
}

func (t *countingTrack) WriteRTP(p *rtp.Packet) {
	t.c.packets.Add(1)
	if t.started && p.SequenceNumber != t.lastSeq+1 {
		t.c.gaps.Add(1)
	}
	t.started, t.lastSeq = true, p.SequenceNumber
	t.frame = append(t.frame, p.Payload...)
	if t.video && !p.Marker {
		return
	}
	n, _ := io.Discard.Write(t.frame)
	t.c.frames.Add(1)
	t.c.bytes.Add(int64(n + blockOverhead))
	t.frame = t.frame[:0]
}

func (t *countingTrack) End() {}

// startRecording records room on node into a counting sink.
func startRecording(ctx context.Context, node media.Recorder, room string, c *recCounters) error {
	if _, err := node.Record(ctx, room, countingSink{c}); err != nil {
		return fmt.Errorf("record %s: %w", room, err)
	}
	c.recordings.Add(1)
	return nil
}

// recBaseline is the node's use before the recordings started: over a
// window as long as the measured one, and its memory right after.
type recBaseline struct {
	cpuSeconds float64
	rssBytes   int64
	rooms      int
}

// startRecordings measures the node without recordings for o.duration,
// then records every room.
func startRecordings(ctx context.Context, o options, env runEnv, rooms [][]*member) (recBaseline, error) {
	if env.record == nil {
		return recBaseline{}, errors.New("-record needs -direct")
	}
	a, err := env.usage()
	if err != nil {
		return recBaseline{}, err
	}
	select {
	case <-ctx.Done():
		return recBaseline{}, ctx.Err()
	case <-time.After(o.duration):
	}
	b, err := env.usage()
	if err != nil {
		return recBaseline{}, err
	}
	for i := range rooms {
		if err := env.record(ctx, env.roomName(i)); err != nil {
			return recBaseline{}, err
		}
	}
	return recBaseline{cpuSeconds: b.CPUSeconds - a.CPUSeconds, rssBytes: b.RSSBytes, rooms: len(rooms)}, nil
}

// result sets r's recording figures from the recordings' totals at the
// start and end of the measured window and the node's use then.
func (rb recBaseline) result(r *Result, rec1, rec2 recTotals, u1, u2 procstat.Usage, window time.Duration) {
	r.Recordings = int(rec2.Recordings)
	r.RecordedTracks = rec2.Tracks
	r.RecordedPackets = rec2.Packets - rec1.Packets
	r.RecordedBytes = rec2.Bytes - rec1.Bytes
	r.RecordedGaps = rec2.Gaps - rec1.Gaps
	r.RecordingsEnded = rec2.Ended
	r.BaselineCPUSeconds = rb.cpuSeconds
	if rb.rooms > 0 {
		extra := u2.CPUSeconds - u1.CPUSeconds - rb.cpuSeconds
		r.RecordCPUPercentPerConsult = 100 * extra / window.Seconds() / float64(rb.rooms)
		r.RecordKiBPerConsult = (float64(u1.RSSBytes) - float64(rb.rssBytes)) / 1024 / float64(rb.rooms)
		r.RecordedKbpsPerConsult = float64(r.RecordedBytes) * 8 / 1000 / window.Seconds() / float64(rb.rooms)
	}
}
