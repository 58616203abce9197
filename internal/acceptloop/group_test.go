package acceptloop

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
)

// failingClose is a listener whose Close fails with err and counts calls.
type failingClose struct {
	scripted
	err    error
	closes int
}

func (f *failingClose) Close() error { f.closes++; return f.err }

func TestGroupCloseStopsOnceAndWaits(t *testing.T) {
	broken := errors.New("broken")
	tests := []struct {
		name     string
		closeErr error
		want     error
	}{
		{"closed cleanly", nil, nil},
		{"already closed", net.ErrClosed, nil},
		{"close fails", broken, broken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := &failingClose{err: tc.closeErr}
				g := NewGroup(l)
				finished := false
				g.Go(func() {
					<-g.Context().Done()
					finished = true
				})
				for i := range 2 {
					if err := g.Close(); !errors.Is(err, tc.want) {
						t.Errorf("Close #%d = %v, want %v", i+1, err, tc.want)
					}
				}
				if !finished {
					t.Error("Close returned before the group's goroutine")
				}
				if l.closes != 1 {
					t.Errorf("the listener was closed %d times, want 1", l.closes)
				}
			})
		})
	}
}

func TestGroupCancelLeavesTheListenerOpen(t *testing.T) {
	l := &failingClose{}
	g := NewGroup(l)
	g.Cancel()
	if g.Context().Err() == nil {
		t.Fatal("Cancel did not cancel the context")
	}
	if l.closes != 0 {
		t.Fatal("Cancel closed the listener")
	}
	if err := g.Close(); err != nil || l.closes != 1 {
		t.Fatalf("Close after Cancel = %v with %d closes, want nil and 1", err, l.closes)
	}
}
