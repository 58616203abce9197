package sfulink

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openconsult/openconsult/media/nodetest"
)

// TestEndedBeforeConfirmedFailsTheRequest: a node that ends a session or
// a recording before the successful result of its join or record request
// (which the protocol forbids) makes the request fail, rather than hand
// back a session that has ended and whose receiver never hears Closed.
// The same end after the result reaches the receiver as usual.
func TestEndedBeforeConfirmedFailsTheRequest(t *testing.T) {
	const wait = 15 * time.Second
	closed := func(req message) message {
		return message{Type: typeClosed, SID: req.SID, Code: codeFailed, Error: "gone"}
	}
	replaced := func(req message) message { return message{Type: typeReplaced, SID: req.SID} }
	recordEnd := func(req message) message {
		return message{Type: typeRecordEnd, Rec: req.Rec, Code: codeFailed, Error: "gone"}
	}
	tests := []struct {
		name         string
		record       bool
		end          func(req message) message
		endFirst     bool // the end comes before the result
		wantErr      bool
		wantEndHeard bool // Closed or Ended reaches the receiver
	}{
		{"join closed before its result", false, closed, true, true, false},
		{"join replaced before its result", false, replaced, true, true, false},
		{"record ended before its result", true, recordEnd, true, true, false},
		{"join closed after its result", false, closed, false, false, true},
		{"record ended after its result", true, recordEnd, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, l := offlineLink(wait, quietLog())
				events, sink := newRecorder(), nodetest.NewRecordLog()
				done := make(chan error, 1)
				go func() {
					var err error
					if tt.record {
						_, err = c.Record(context.Background(), "c_1", sink)
					} else {
						_, err = c.Join(context.Background(), "c_1", "m_1", events)
					}
					done <- err
				}()
				synctest.Wait()
				ms := sent(t, l)
				if len(ms) != 1 {
					t.Fatalf("sent to the node %+v, want one request", ms)
				}
				feed := []message{{Type: typeResult, ID: ms[0].ID}, tt.end(ms[0])}
				if tt.endFirst {
					feed[0], feed[1] = feed[1], feed[0]
				}
				for _, m := range feed {
					data, err := json.Marshal(m)
					if err != nil {
						t.Fatal(err)
					}
					l.handle(data)
				}
				err := <-done
				if (err != nil) != tt.wantErr || tt.wantErr && !errors.Is(err, errEndedUnconfirmed) {
					t.Fatalf("request returned %v, want an error %t (%v)", err, tt.wantErr, errEndedUnconfirmed)
				}
				synctest.Wait()
				heard := len(events.closed) > 0
				if tt.record {
					heard = len(sink.EndedCh()) > 0
				}
				if heard != tt.wantEndHeard {
					t.Errorf("the receiver heard the end: %t, want %t", heard, tt.wantEndHeard)
				}
				if l.sessions.get(ms[0].SID) != nil || l.recs.get(ms[0].Rec) != nil {
					t.Error("the ended session or recording is still on the link")
				}
				l.end(errors.New("link over"))
				c.events.Wait()
				if tt.wantErr && (len(events.closed) > 0 || len(sink.EndedCh()) > 0) {
					t.Error("the receiver of a failed request heard an end")
				}
				if br := sink.Breaches(); len(br) > 0 {
					t.Errorf("sink contract breached: %v", br)
				}
			})
		})
	}
}
