package sfulink

import (
	"errors"
	"fmt"
	"testing"

	"github.com/openconsult/openconsult/media/nodetest"
)

// FuzzNodeMessage feeds what a node sends to a signal process's side of
// the link, with a session, a recording and a request under way on it:
// nothing panics, the link ends cleanly, every delivery goroutine ends and
// the recording's sink hears Ended, its contract kept.
func FuzzNodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"result","id":1,"load":{"participants":1}}`,
		`{"type":"result","id":1,"code":"full","error":"full"}`,
		`{"type":"answer","sid":"s1","sdp":"v=0"}`, `{"type":"speaker","sid":"s1","member":"m"}`,
		`{"type":"closed","sid":"s1","code":"room_closed","error":"x"}`, `{"type":"replaced","sid":"s1"}`,
		`{"type":"track","rec":1,"num":1,"track":{"member":"m","id":"m/v","kind":"video","mimeType":"video/VP8","clockRate":90000,"pt":96}}`,
		`{"type":"trackend","rec":1,"num":1}`, `{"type":"recordend","rec":1,"code":"failed"}`,
		`{"type":"error","code":"bad_request"}`, `{"type":"load","load":{"rooms":-1}}`,
		`[]`, `null`, "\xff", "\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x0c\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Client{url: "wss://node.test/", log: quietLog()}
		l := newClientLink(c, &endpoint{out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{})})
		rp, err := l.newSession(newRecorder())
		if err != nil {
			t.Fatal(err)
		}
		sink := nodetest.NewRecordLog()
		rr, err := l.newRecording(sink)
		if err != nil {
			t.Fatal(err)
		}
		rr.confirm()
		l.pending[1] = pendingCall{ch: make(chan message, 1), ok: rp.confirm}
		l.handle(data)
		l.handleMedia(data)
		l.end(errors.New("link over"))
		c.events.Wait()
		select {
		case <-sink.EndedCh():
		default:
			t.Fatal("the recording ended without Ended")
		}
		if br := sink.Breaches(); len(br) > 0 {
			t.Fatalf("sink contract breached: %v", br)
		}
	})
}

// TestSuccessAfterGivingUpStaysSilent: the read loop may take a request's
// success just as the caller's context ends, and confirm the session or
// recording only after the caller discarded it; the caller's error stands,
// and the owner hears no end of what it never got.
func TestSuccessAfterGivingUpStaysSilent(t *testing.T) {
	tests := []struct {
		name  string
		start func(l *clientLink) (opening, func() error)
	}{
		{"recording", func(l *clientLink) (opening, func() error) {
			sink := nodetest.NewRecordLog()
			rr, err := l.newRecording(sink)
			if err != nil {
				t.Fatal(err)
			}
			return rr, func() error {
				select {
				case err := <-sink.EndedCh():
					return fmt.Errorf("Ended(%v)", err)
				default:
					return nil
				}
			}
		}},
		{"session", func(l *clientLink) (opening, func() error) {
			events := newRecorder()
			rp, err := l.newSession(events)
			if err != nil {
				t.Fatal(err)
			}
			return rp, func() error {
				select {
				case err := <-events.closed:
					return fmt.Errorf("Closed(%v)", err)
				default:
					return nil
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{url: "wss://node.test/", log: quietLog()}
			l := newClientLink(c, &endpoint{out: make(chan outMsg, sendQueue+mediaQueue), done: make(chan struct{})})
			x, heard := tt.start(l)
			x.discard() // the caller gave up: its context ended
			x.confirm() // the read loop then runs the success it took
			l.end(errors.New("link over"))
			c.events.Wait()
			if err := heard(); err != nil {
				t.Fatalf("the owner of a failed call heard %v", err)
			}
		})
	}
}
