package sfulink

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// countSink is a test double of a recorder that only counts packets.
type countSink struct {
	tracks, packets atomic.Int64
}

func (s *countSink) Track(media.RecordedTrack) media.TrackSink { s.tracks.Add(1); return s }
func (s *countSink) Ended(error)                               {}
func (s *countSink) End()                                      {}
func (s *countSink) WriteRTP(*rtp.Packet)                      { s.packets.Add(1) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordedMediaOverLink is the link's share of a remote
// recording: 1,100-byte video packets from the node's recording sink,
// encoded, batched, through mutual TLS over loopback, decoded and handed
// to the signal side's sink, both ends in this process. It reports the
// CPU time of both ends per packet.
func BenchmarkRecordedMediaOverLink(b *testing.B) {
	p := newPKI(b)
	n := startNode(b, p, 0)
	c := newTestClient(b, n.url, clientTLS(b, p))
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Join(ctx, "c_1", "m_1", newRecorder()); err != nil {
		b.Fatal(err)
	}
	sink := &countSink{}
	rec, err := c.Record(ctx, "c_1", sink)
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Stop()
	var sr *serverRecording
	for sr == nil {
		n.srv.mu.Lock()
		for conn := range n.srv.conns {
			conn.mu.Lock()
			sr = conn.recs[1]
			conn.mu.Unlock()
		}
		n.srv.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	ts := sr.Track(media.RecordedTrack{MemberID: "m_1", TrackID: "m_1/video", Kind: webrtc.RTPCodecTypeVideo,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}})
	for sink.tracks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, Payload: make([]byte, 1100)}
	b.ReportAllocs()
	b.SetBytes(int64(pkt.MarshalSize()))
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		pkt.SequenceNumber = uint16(i)
		pkt.Timestamp = uint32(i/3) * 3000
		for int64(i)-sink.packets.Load() > 512 {
			time.Sleep(100 * time.Microsecond) // never drop: this measures the carrying
		}
		ts.WriteRTP(pkt)
	}
	for sink.packets.Load() < int64(b.N) {
		if d := sr.dropped.Load() + rec.(*remoteRecording).droppedCount(); d > 0 {
			b.Fatalf("%d packets dropped", d)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/pkt")
}
