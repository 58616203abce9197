package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWrongCurrentPasswordCountsTowardLockout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var pe *PolicyError
	for i := 1; i < DefaultPolicy.MaxFailures; i++ {
		if _, err := f.svc.ChangePassword(ctx, f.admin, "a wrong guess here", "a brand new passphrase", testClient); !errors.As(err, &pe) {
			t.Fatalf("wrong current password %d = %v, want a PolicyError", i, err)
		}
	}
	if _, err := f.svc.ChangePassword(ctx, f.admin, "a wrong guess here", "a brand new passphrase", testClient); !errors.Is(err, ErrLocked) {
		t.Fatalf("wrong current password %d = %v, want ErrLocked", DefaultPolicy.MaxFailures, err)
	}
	if _, err := f.svc.ChangePassword(ctx, f.admin, "admin passphrase 1", "a brand new passphrase", testClient); !errors.Is(err, ErrLocked) {
		t.Fatalf("right current password while locked = %v, want ErrLocked", err)
	}
	if _, _, err := f.svc.SignIn(ctx, "root.admin", "admin passphrase 1", testClient); !errors.Is(err, ErrLocked) {
		t.Fatalf("sign-in after the guesses = %v, want ErrLocked", err)
	}
}

func TestExpiredPasswordMustBeChangedAtSignIn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.svc.policy.Password.MaxAge = 90 * 24 * time.Hour
	tests := []struct {
		after time.Duration
		want  string
	}{
		{89 * 24 * time.Hour, StageFull},
		{2 * 24 * time.Hour, StageChange},
	}
	for _, tt := range tests {
		f.advance(tt.after)
		token, stage, err := f.svc.SignIn(ctx, "root.admin", "admin passphrase 1", testClient)
		if err != nil || stage != StageSecondFactor {
			t.Fatalf("SignIn = %s, %v", stage, err)
		}
		_, stage, err = f.svc.VerifySecondFactor(ctx, f.session(t, token), f.code(t, f.secret), testClient)
		if err != nil || stage != tt.want {
			t.Fatalf("%s after setup: stage %q, %v; want %q", f.clock.Sub(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)), stage, err, tt.want)
		}
	}
}
