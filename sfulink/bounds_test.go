package sfulink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// offlineLink is a link whose node is the test: what the client sends
// waits in the endpoint's queue, and the test feeds the read loop.
func offlineLink(replyTimeout time.Duration, log *slog.Logger) (*Client, *clientLink) {
	c := &Client{url: "wss://node.test/", log: log, replyTimeout: replyTimeout, settled: make(chan struct{})}
	close(c.settled)
	l := newClientLink(c, &endpoint{out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{})})
	c.link = l
	return c, l
}

// sent is what the client sent to the node, in order.
func sent(t *testing.T, l *clientLink) []message {
	t.Helper()
	var ms []message
	for len(l.ep.out) > 0 {
		var m message
		if err := json.Unmarshal((<-l.ep.out).b, &m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// stuckEvents holds its session's delivery in the first Answer, which
// it reports on stuck, until released, as a receiver that cannot keep up
// does.
type stuckEvents struct {
	*recorder
	once    sync.Once
	stuck   chan struct{}
	release chan struct{}
}

func (s *stuckEvents) Answer(string) {
	s.once.Do(func() {
		s.stuck <- struct{}{}
		<-s.release
	})
}

// TestSessionFloodEnds: a node that sends a session's events faster than
// its receiver takes them, without end, ends the session instead of
// growing the signal side's queue without bound; the receiver hears
// Closed with the reason and the node is told to close the session.
func TestSessionFloodEnds(t *testing.T) {
	c, l := offlineLink(0, quietLog())
	rp, events := floodStuckSession(t, l)
	if l.sessions.get(rp.sid) != nil {
		t.Fatal("the flooded session is still on the link")
	}
	close(events.release)
	if err := events.waitClosed(t, 10*time.Second); !errors.Is(err, errSessionFlood) {
		t.Fatalf("Closed(%v), want the flood", err)
	}
	ms := sent(t, l)
	if len(ms) != 1 || ms[0].Type != typeClose || ms[0].SID != rp.sid {
		t.Fatalf("sent to the node %+v, want one close of %s", ms, rp.sid)
	}
	l.end(errors.New("link over"))
	c.events.Wait()
}

// TestRequestsGiveUpOnASilentNode: a node that takes a join or a record
// request and never answers holds the caller for the reply timeout at
// most, even when the caller's context has no deadline; the request is
// then undone. A caller's own earlier deadline still comes first.
func TestRequestsGiveUpOnASilentNode(t *testing.T) {
	const wait = 15 * time.Second
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *Client) error
		undo     string
		deadline time.Duration // of the caller's context; 0 for none
		want     time.Duration
		noReply  bool
	}{
		{"join", func(ctx context.Context, c *Client) error {
			_, err := c.Join(ctx, "c_1", "m_1", newRecorder())
			return err
		}, typeClose, 0, wait, true},
		{"record", func(ctx context.Context, c *Client) error {
			_, err := c.Record(ctx, "c_1", nodetest.NewRecordLog())
			return err
		}, typeStopRecord, 0, wait, true},
		{"join with an earlier deadline", func(ctx context.Context, c *Client) error {
			_, err := c.Join(ctx, "c_1", "m_1", newRecorder())
			return err
		}, typeClose, 2 * time.Second, 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, l := offlineLink(wait, quietLog())
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				err := tt.call(ctx, c)
				if took := time.Since(start); took != tt.want {
					t.Errorf("the call returned after %s, want %s", took, tt.want)
				}
				if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errNoReply) != tt.noReply {
					t.Errorf("err %v, want a deadline (no reply: %t)", err, tt.noReply)
				}
				if ms := sent(t, l); len(ms) != 2 || ms[1].Type != tt.undo {
					t.Errorf("sent to the node %+v, want the request then %s", ms, tt.undo)
				}
				l.end(errors.New("link over"))
				c.events.Wait()
			})
		})
	}
}

// TestStoppedRecordingEnds: once stopped, a recording ends when the node
// says so, or, from a node that stays silent, after the reply timeout
// with an error; the sink's contract holds either way.
func TestStoppedRecordingEnds(t *testing.T) {
	const wait = 15 * time.Second
	tests := []struct {
		name    string
		nodeEnd bool
		want    error
		after   time.Duration
	}{
		{"the node ends it", true, nil, time.Second},
		{"the node stays silent", false, errNoRecordEnd, wait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, l := offlineLink(wait, quietLog())
				sink := nodetest.NewRecordLog()
				rr, err := l.newRecording(sink)
				if err != nil {
					t.Fatal(err)
				}
				rr.confirm()
				track := &wireTrack{Member: "m", ID: "m/video", Kind: "video", MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}
				l.handleRecording(message{Type: typeTrack, Rec: rr.id, Num: 1, Track: track})
				start := time.Now()
				rr.Stop()
				if tt.nodeEnd {
					time.Sleep(time.Second)
					l.handleRecording(message{Type: typeRecordEnd, Rec: rr.id})
				}
				err = <-sink.EndedCh()
				if took := time.Since(start); took != tt.after {
					t.Errorf("Ended after %s, want %s", took, tt.after)
				}
				if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
					t.Errorf("Ended(%v), want %v", err, tt.want)
				}
				if l.recs.get(rr.id) != nil {
					t.Error("the ended recording is still on the link")
				}
				c.events.Wait()
				time.Sleep(2 * wait) // no end comes twice
				l.end(errors.New("link over"))
				if br := sink.Breaches(); len(br) > 0 {
					t.Errorf("sink contract breached: %v", br)
				}
			})
		})
	}
}

// TestNodeErrorTextClipped: what a node says of an error reaches signal's
// logs and errors cut to a bounded length of valid UTF-8.
func TestNodeErrorTextClipped(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" to check only the bounds
	}{
		{"short", "room is full", "room is full"},
		{"exactly the limit", strings.Repeat("a", maxErrorText), strings.Repeat("a", maxErrorText)},
		{"long", strings.Repeat("a", MaxMessage), ""},
		{"long multibyte", strings.Repeat("é€😀", MaxMessage/9), ""},
		{"invalid UTF-8", "bad \xff\xfe text", "bad \uFFFD text"},
		{"long invalid UTF-8", strings.Repeat("\xff", 1000), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in)
			if tt.want != "" && got != tt.want {
				t.Fatalf("clip = %q, want %q", got, tt.want)
			}
			if len(got) > maxErrorText || !utf8.ValidString(got) {
				t.Fatalf("clip gave %d bytes, valid UTF-8 %t", len(got), utf8.ValidString(got))
			}
			if len(tt.in) > maxErrorText && utf8.ValidString(tt.in) && !strings.HasPrefix(tt.in, strings.TrimSuffix(got, "…")) {
				t.Fatalf("clip = %q is no prefix of the text", got)
			}
		})
	}

	huge := strings.Repeat("x", MaxMessage-100)
	if err := remoteError(message{Code: codeFailed, Error: huge}); len(err.Error()) > 2*maxErrorText {
		t.Fatalf("error of %d bytes from a node's text", len(err.Error()))
	}
	if err := remoteError(message{Code: codeFull, Error: huge}); !errors.Is(err, media.ErrFull) {
		t.Fatalf("a clipped error lost its code: %v", err)
	}

	var logged bytes.Buffer
	_, l := offlineLink(0, slog.New(slog.NewTextHandler(&logged, nil)))
	data, err := json.Marshal(message{Type: typeError, Code: huge, Error: huge})
	if err != nil {
		t.Fatal(err)
	}
	l.handle(data)
	if logged.Len() == 0 || logged.Len() > 4*maxErrorText {
		t.Fatalf("logged %d bytes of a node's error", logged.Len())
	}
}

// floodStuckSession opens a session on l whose receiver takes one event
// and then holds delivery until its release is closed, and floods it with
// more answers than the link queues for a session.
func floodStuckSession(t *testing.T, l *clientLink) (*remoteParticipant, *stuckEvents) {
	t.Helper()
	events := &stuckEvents{recorder: newRecorder(), stuck: make(chan struct{}), release: make(chan struct{})}
	rp, err := l.newSession(events)
	if err != nil {
		t.Fatal(err)
	}
	rp.confirm()
	answer, err := json.Marshal(message{Type: typeAnswer, SID: rp.sid, SDP: "v=0"})
	if err != nil {
		t.Fatal(err)
	}
	l.handle(answer)
	<-events.stuck // delivery is held from now on
	for range maxSessionEvents + 10 {
		l.handle(answer)
	}
	return rp, events
}
