package sfulink

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// stuckSink holds its recording's delivery in the first Track, which it
// reports on stuck, until released, as a sink that cannot keep up does.
type stuckSink struct {
	*nodetest.RecordLog
	once    sync.Once
	stuck   chan struct{}
	release chan struct{}
}

func (s *stuckSink) Track(t media.RecordedTrack) media.TrackSink {
	s.once.Do(func() {
		s.stuck <- struct{}{}
		<-s.release
	})
	return s.RecordLog.Track(t)
}

// floodSession floods a session whose receiver is stuck with answers.
func floodSession(t *testing.T, l *clientLink) {
	_, events := floodStuckSession(t, l)
	close(events.release)
}

var floodTrack = &wireTrack{Member: "m", ID: "m/video", Kind: "video", MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}

// floodRecording has a recording whose sink is stuck sent the end and
// announcement of one track again and again.
func floodRecording(t *testing.T, l *clientLink) {
	sink := &stuckSink{RecordLog: nodetest.NewRecordLog(), stuck: make(chan struct{}), release: make(chan struct{})}
	defer close(sink.release)
	rr, err := l.newRecording(sink)
	if err != nil {
		t.Fatal(err)
	}
	rr.confirm()
	l.handleRecording(message{Type: typeTrack, Rec: rr.id, Num: 1, Track: floodTrack})
	<-sink.stuck
	for range maxRecordEvents {
		l.handleRecording(message{Type: typeTrackEnd, Rec: rr.id, Num: 1})
		l.handleRecording(message{Type: typeTrack, Rec: rr.id, Num: 1, Track: floodTrack})
	}
}

// floodTracks has a recording announced more live tracks than it takes.
func floodTracks(t *testing.T, l *clientLink) {
	rr, err := l.newRecording(nodetest.NewRecordLog())
	if err != nil {
		t.Fatal(err)
	}
	rr.confirm()
	for i := range maxRecordedTracks + 1 {
		l.handleRecording(message{Type: typeTrack, Rec: rr.id, Num: uint32(i + 1), Track: floodTrack})
	}
}

// TestNodeFloodsAreCounted: what a node sends beyond the link's bounds is
// counted by reason, and by nothing else.
func TestNodeFloodsAreCounted(t *testing.T) {
	tests := []struct {
		name   string
		flood  func(*testing.T, *clientLink)
		reason string
	}{
		{"a session's events", floodSession, floodSessionEvents},
		{"a recording's control messages", floodRecording, floodRecordingEvents},
		{"a recording's tracks", floodTracks, floodRecordingTracks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			c, l := offlineLink(0, quietLog())
			c.metrics = m
			tt.flood(t, l)
			for _, r := range floodReasons {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if got := testutil.ToFloat64(m.floods.WithLabelValues(r)); got != want {
					t.Errorf("%s floods counted %v, want %v", r, got, want)
				}
			}
			l.end(errors.New("link over"))
			c.events.Wait()
		})
	}
}

// TestOversizedMessageFromNodeIsCounted: a node that sends a message over
// MaxMessage loses its link, and the flood is counted.
func TestOversizedMessageFromNodeIsCounted(t *testing.T) {
	p := newPKI(t)
	cfg, err := ServerTLS(p.NodeCert, p.NodeKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"type":"load","pad":"` + strings.Repeat("a", MaxMessage) + `"}`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: cfg, ErrorLog: slog.NewLogLogger(quietLog().Handler(), slog.LevelDebug),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			_ = ws.WriteMessage(websocket.TextMessage, []byte(big))
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})}
	var served sync.WaitGroup
	served.Go(func() { _ = srv.ServeTLS(ln, "", "") })
	t.Cleanup(func() {
		srv.Close()
		served.Wait()
	})
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(t.Context(), ClientConfig{URL: "wss://" + ln.Addr().String() + "/", TLS: clientTLS(t, p), Log: quietLog(),
		Heartbeat: testHeartbeat, MinBackoff: time.Second, MaxBackoff: time.Second, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	eventually.True(t, 10*time.Second, "the oversized message to be counted", func() bool {
		return testutil.ToFloat64(m.floods.WithLabelValues(floodOversize)) >= 1
	})
	if n := testutil.ToFloat64(m.floods.WithLabelValues(floodSessionEvents)); n != 0 {
		t.Fatalf("%v session floods counted", n)
	}
}
