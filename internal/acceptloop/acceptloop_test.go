package acceptloop

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// scripted is a listener whose Accept returns the results it is given, in
// order, then net.ErrClosed; it records when each call came.
type scripted struct {
	results []error
	calls   []time.Time
}

func (s *scripted) Accept() (net.Conn, error) {
	s.calls = append(s.calls, time.Now())
	if len(s.calls) > len(s.results) {
		return nil, net.ErrClosed
	}
	if err := s.results[len(s.calls)-1]; err != nil {
		return nil, err
	}
	c, _ := net.Pipe()
	return c, nil
}

func (s *scripted) Close() error   { return nil }
func (s *scripted) Addr() net.Addr { return &net.TCPAddr{} }

func TestRunWaitsOutFailuresWithBackoff(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Err: syscall.EMFILE}
	tests := []struct {
		name    string
		results []error
		handled int
		waitsMS []int64 // between consecutive Accept calls
	}{
		{"connections only", []error{nil, nil}, 2, []int64{0, 0}},
		{"failures double the wait", []error{emfile, emfile, emfile, nil}, 1, []int64{5, 10, 20, 0}},
		{"a connection resets the wait", []error{emfile, nil, emfile, nil}, 2, []int64{5, 0, 5, 0}},
		{"the wait stops at a second", []error{emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile}, 0, []int64{5, 10, 20, 40, 80, 160, 320, 640, 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := &scripted{results: tc.results}
				handled := 0
				Run(context.Background(), l, slog.New(slog.NewTextHandler(io.Discard, nil)), "test", func(c net.Conn) {
					handled++
					_ = c.Close()
				})
				if handled != tc.handled {
					t.Errorf("handled %d connections, want %d", handled, tc.handled)
				}
				if len(l.calls) != len(tc.results)+1 {
					t.Fatalf("%d calls to Accept, want %d", len(l.calls), len(tc.results)+1)
				}
				for i, want := range tc.waitsMS {
					if got := l.calls[i+1].Sub(l.calls[i]).Milliseconds(); got != want {
						t.Errorf("wait after call %d: %d ms, want %d", i+1, got, want)
					}
				}
			})
		})
	}
}

func TestRunStopsWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		failing := &scripted{results: make([]error, 1000)}
		for i := range failing.results {
			failing.results[i] = errors.New("temporary")
		}
		done := make(chan struct{})
		go func() {
			Run(ctx, failing, slog.New(slog.NewTextHandler(io.Discard, nil)), "test", func(net.Conn) {})
			close(done)
		}()
		time.Sleep(3 * time.Second) // fake time: Run is waiting out failures
		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Run went on after its context ended")
		}
	})
}
