package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestHashGateRunsAtMostNAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 3
		g := NewHashGate(n, time.Minute)
		var running, peak atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				release, err := g.acquire(context.Background())
				if err != nil {
					t.Errorf("acquire: %v", err)
					return
				}
				defer release()
				now := running.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				time.Sleep(time.Second) // a hash's run, on the bubble's clock
				running.Add(-1)
			})
		}
		wg.Wait()
		if got := peak.Load(); got != n {
			t.Fatalf("%d ran at once, want at most and at least %d", got, n)
		}
	})
}

func TestHashGateRefusesTheNextAfterTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, wait = 2, 2 * time.Second
		g := NewHashGate(n, wait)
		ctx := context.Background()
		var releases []func()
		for range n {
			release, err := g.acquire(ctx)
			if err != nil {
				t.Fatalf("slot refused below the bound: %v", err)
			}
			releases = append(releases, release)
		}
		start := time.Now()
		if _, err := g.acquire(ctx); !errors.Is(err, ErrBusy) {
			t.Fatalf("acquire beyond the bound = %v, want ErrBusy", err)
		}
		if waited := time.Since(start); waited != wait {
			t.Fatalf("refused after %s, want after the wait of %s", waited, wait)
		}
		// A slot freed during the wait goes to the waiter.
		got := make(chan error, 1)
		go func() {
			release, err := g.acquire(ctx)
			if err == nil {
				release()
			}
			got <- err
		}()
		time.Sleep(wait / 2)
		releases[0]()
		if err := <-got; err != nil {
			t.Fatalf("waiter not served by a freed slot: %v", err)
		}
	})
}

func TestSignInWhileHashingIsSaturatedIsBusyAndCountsNothing(t *testing.T) {
	f := newFixture(t)
	f.createUser(t, "dr.busy", "busy clinician passphrase")
	ctx := context.Background()
	gate := f.svc.gate
	gate.wait = 10 * time.Millisecond
	var releases []func()
	for range gate.Size() {
		release, err := gate.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	for i := range DefaultPolicy.MaxFailures + 1 {
		if _, _, err := f.svc.SignIn(ctx, "dr.busy", "wrong passphrase here", testClient); !errors.Is(err, ErrBusy) {
			t.Fatalf("attempt %d with hashing saturated = %v, want ErrBusy", i+1, err)
		}
	}
	for _, release := range releases {
		release()
	}
	if _, stage, err := f.svc.SignIn(ctx, "dr.busy", "busy clinician passphrase", testClient); err != nil || stage != StageEnroll {
		t.Fatalf("sign-in after the burst = %q, %v; busy refusals must not count toward the lockout", stage, err)
	}
}
