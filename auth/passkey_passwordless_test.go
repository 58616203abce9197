package auth

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestPasswordlessSignInWithADiscoverablePasskey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{Passwordless: true})
	key := newSoftKey(t, testOrigin)
	f.registerKey(t, pk, key, "Key")

	opts, cookie, err := pk.BeginPasswordless(ctx)
	if err != nil {
		t.Fatal(err)
	}
	token, stage, err := pk.FinishPasswordless(ctx, cookie, key.assert(t, opts), testClient)
	if err != nil || stage != StageFull {
		t.Fatalf("FinishPasswordless = %s, %v", stage, err)
	}
	if id := f.session(t, token); !id.Full() || id.User.ID != f.admin.User.ID {
		t.Fatalf("session %+v", id)
	}
	last := f.audit.list[len(f.audit.list)-1]
	if last.Type != EventPasskeySignIn || !last.Success || last.Fields["method"] != "passwordless" {
		t.Fatalf("audit %+v", last)
	}
}

func TestPasswordlessRefusals(t *testing.T) {
	tests := []struct {
		name string
		// attack returns the cookie and answer to send after one good
		// sign-in whose cookie and answer it is given.
		attack func(t *testing.T, f *fixture, pk *Passkeys, key *softKey, cookie string, good []byte) (string, []byte)
	}{
		{"replayed answer", func(t *testing.T, _ *fixture, _ *Passkeys, _ *softKey, cookie string, good []byte) (string, []byte) {
			return cookie, good
		}},
		{"another browser's ceremony", func(t *testing.T, _ *fixture, pk *Passkeys, key *softKey, _ string, _ []byte) (string, []byte) {
			opts, _, err := pk.BeginPasswordless(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, mine, err := pk.BeginPasswordless(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return mine, key.assert(t, opts)
		}},
		{"user handle of another account", func(t *testing.T, f *fixture, pk *Passkeys, key *softKey, _ string, _ []byte) (string, []byte) {
			f.createUser(t, "dr.victim", "victim passphrase 1")
			victim, err := f.db.UserByUsername(context.Background(), "dr.victim")
			if err != nil {
				t.Fatal(err)
			}
			key.handle = []byte(victim.ID)
			opts, cookie, err := pk.BeginPasswordless(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return cookie, key.assert(t, opts)
		}},
		{"disabled account", func(t *testing.T, f *fixture, pk *Passkeys, key *softKey, _ string, _ []byte) (string, []byte) {
			if err := f.db.SetUserFlags(context.Background(), f.admin.User.ID, true, false, *f.clock); err != nil {
				t.Fatal(err)
			}
			opts, cookie, err := pk.BeginPasswordless(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return cookie, key.assert(t, opts)
		}},
		{"no cookie", func(t *testing.T, _ *fixture, pk *Passkeys, key *softKey, _ string, _ []byte) (string, []byte) {
			opts, _, err := pk.BeginPasswordless(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return "", key.assert(t, opts)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			pk := f.passkeys(t, PasskeyOptions{Passwordless: true})
			key := newSoftKey(t, testOrigin)
			f.registerKey(t, pk, key, "Key")
			opts, cookie, err := pk.BeginPasswordless(ctx)
			if err != nil {
				t.Fatal(err)
			}
			good := key.assert(t, opts)
			if _, _, err := pk.FinishPasswordless(ctx, cookie, good, testClient); err != nil {
				t.Fatalf("good sign-in: %v", err)
			}
			cookie, answer := tt.attack(t, f, pk, key, cookie, good)
			if token, _, err := pk.FinishPasswordless(ctx, cookie, answer, testClient); !errors.Is(err, ErrPasskeyRefused) {
				t.Fatalf("FinishPasswordless = %q, %v; want ErrPasskeyRefused", token, err)
			}
			if !slices.Contains(f.audit.types(), EventPasskeySignIn+"-") {
				t.Errorf("refusal not audited: %v", f.audit.types())
			}
		})
	}
}

func TestPasswordlessIsOffByDefault(t *testing.T) {
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	if _, _, err := pk.BeginPasswordless(context.Background()); !errors.Is(err, ErrPasswordlessOff) {
		t.Fatalf("BeginPasswordless = %v, want ErrPasswordlessOff", err)
	}
	if _, _, err := pk.FinishPasswordless(context.Background(), "x", []byte("{}"), testClient); !errors.Is(err, ErrPasswordlessOff) {
		t.Fatalf("FinishPasswordless = %v, want ErrPasswordlessOff", err)
	}
}
