package auth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// liveConns records which accounts the service asked to disconnect.
type liveConns struct {
	mu     sync.Mutex
	closed []string
}

func (l *liveConns) CloseAccount(userID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = append(l.closed, userID)
	return 1
}

func (l *liveConns) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.closed
	l.closed = nil
	return out
}

// Every change that ends an account's sessions also closes its open call
// pages, once the change is stored, and leaves no session that a page
// could reconnect with.
func TestEndingSessionsClosesLiveConnections(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		do   func(f *fixture, id Identity) error
	}{
		{"disable", func(f *fixture, id Identity) error {
			return f.svc.Apply(ctx, f.admin, id.User.ID, ActionDisable, testClient)
		}},
		{"revoke sessions", func(f *fixture, id Identity) error {
			return f.svc.Apply(ctx, f.admin, id.User.ID, ActionRevokeSessions, testClient)
		}},
		{"force a password change", func(f *fixture, id Identity) error {
			return f.svc.Apply(ctx, f.admin, id.User.ID, ActionForcePassword, testClient)
		}},
		{"sign out everywhere", func(f *fixture, id Identity) error { return f.svc.SignOutEverywhere(ctx, id, testClient) }},
		{"password reset link", func(f *fixture, id Identity) error {
			if err := f.svc.RequestReset(ctx, "dr.who", testClient); err != nil {
				return err
			}
			return f.svc.SetPasswordWithLink(ctx, f.lastLink(t, "/reset/"), PurposeReset, "a brand new passphrase", testClient)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createUser(t, "dr.who", "the first passphrase")
			id, token, _ := f.signInFully(t, "dr.who", "the first passphrase")
			f.live.take()
			if err := tt.do(f, id); err != nil {
				t.Fatal(err)
			}
			if got := f.live.take(); !slices.Equal(got, []string{id.User.ID}) {
				t.Fatalf("live connections closed for %v, want [%s]", got, id.User.ID)
			}
			if _, err := f.svc.Session(ctx, token); !errors.Is(err, ErrNoSession) {
				t.Fatalf("the session a page could reconnect with still works: %v", err)
			}
		})
	}
}

func TestActionsThatKeepSessionsCloseNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.createUser(t, "dr.who", "the first passphrase")
	id, _, _ := f.signInFully(t, "dr.who", "the first passphrase")
	f.live.take()
	if err := f.svc.Apply(ctx, f.admin, id.User.ID, ActionResetTOTP, testClient); err != nil {
		t.Fatal(err)
	}
	if got := f.live.take(); len(got) != 0 {
		t.Fatalf("resetting the second factor closed %v", got)
	}
}

// A short idle timeout is renewed by activity more often than once a
// minute, so a session used every 30 s never idles out.
func TestShortIdleTimeoutIsRenewedByActivity(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.svc.policy.IdleTimeout = time.Minute
	f.createUser(t, "dr.who", "the first passphrase")
	_, token, _ := f.signInFully(t, "dr.who", "the first passphrase")
	for i := range 6 {
		f.advance(35 * time.Second)
		if _, err := f.svc.Session(ctx, token); err != nil {
			t.Fatalf("use %d, every 35 s: %v", i+1, err)
		}
	}
	f.advance(time.Minute)
	if _, err := f.svc.Session(ctx, token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after a minute idle: %v", err)
	}
}
