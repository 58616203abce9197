package recording

import (
	"context"
	"runtime"
	"syscall"
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

// BenchmarkRecordingMemory records a consult of three members (VP8 video
// and Opus audio each) for 60 s of media through the whole service, into
// the filesystem object store with SQLite, as fast as it takes them, and
// reports the live heap's peak while it runs, the bytes stored per member
// and second of media, and the process's CPU time per member and second
// of media (an upper bound: it includes the test's packetizing).
func BenchmarkRecordingMemory(b *testing.B) {
	frames := mediatest.Video(b, "vp8", 61*time.Second, 30, 90)
	for range b.N {
		f := newFixture(b)
		node := &testNode{}
		a := f.start(b, node)
		var members []*member
		for _, id := range []string{"m_1", "m_2", "m_3"} {
			members = append(members, f.join(node, id, frames))
		}
		var peak uint64
		var ms runtime.MemStats
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-a.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		cpu0 := cpuTime()
		f.play(b, a, 60*time.Second, members...)
		if err := a.Stop(context.Background(), "requested"); err != nil {
			b.Fatal(err)
		}
		<-done
		cpu := cpuTime() - cpu0
		sum, err := f.svc.List(context.Background(), f.consult)
		if err != nil || len(sum) != 1 {
			b.Fatal(sum, err)
		}
		b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(sum[0].Size)/3/60, "stored-bytes/member/s")
		b.ReportMetric(float64(cpu.Milliseconds())/3/60, "cpu-ms/member/s")
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
