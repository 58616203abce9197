package auth

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

const testOrigin = "https://consult.example.org"

func (f *fixture) passkeys(t *testing.T, opt PasskeyOptions) *Passkeys {
	t.Helper()
	k, err := f.svc.NewPasskeys(f.db, opt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// registerKey registers a soft key on the admin's account.
func (f *fixture) registerKey(t *testing.T, pk *Passkeys, key *softKey, name string) PasskeyInfo {
	t.Helper()
	ctx := context.Background()
	opts, err := pk.BeginRegistration(ctx, f.admin)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	info, err := pk.FinishRegistration(ctx, f.admin, name, key.register(t, opts), testClient)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	return info
}

// passwordStep signs the admin in with the password only.
func (f *fixture) passwordStep(t *testing.T) (Identity, string) {
	t.Helper()
	token, stage, err := f.svc.SignIn(context.Background(), "root.admin", "admin passphrase 1", testClient)
	if err != nil || stage != StageSecondFactor {
		t.Fatalf("SignIn = %s, %v", stage, err)
	}
	return f.session(t, token), token
}

func TestPasskeyReplacesTheCodeAsSecondFactor(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	key := newSoftKey(t, testOrigin)
	info := f.registerKey(t, pk, key, "  Laptop   Touch ID ")
	if info.Name != "Laptop Touch ID" {
		t.Fatalf("name %q was not normalised", info.Name)
	}
	if list, err := pk.List(ctx, f.admin); err != nil || len(list) != 1 || list[0].ID != info.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}

	id, oldToken := f.passwordStep(t)
	opts, err := pk.BeginSignIn(ctx, id)
	if err != nil {
		t.Fatalf("BeginSignIn: %v", err)
	}
	token, stage, err := pk.FinishSignIn(ctx, id, key.assert(t, opts), testClient)
	if err != nil || stage != StageFull {
		t.Fatalf("FinishSignIn = %s, %v", stage, err)
	}
	if full := f.session(t, token); !full.Full() || full.User.ID != f.admin.User.ID {
		t.Fatalf("session after passkey: %+v", full)
	}
	if _, err := f.svc.Session(ctx, oldToken); !errors.Is(err, ErrNoSession) {
		t.Fatalf("pre-passkey token still valid: %v", err)
	}
	types := f.audit.types()
	for _, want := range []string{EventPasskeyRegistered + "+", EventPasskeySignIn + "+"} {
		if !slices.Contains(types, want) {
			t.Errorf("audit %v lacks %s", types, want)
		}
	}
	// The stored counter moved on with the assertion.
	keys, _ := f.db.Passkeys(ctx, f.admin.User.ID)
	if keys[0].SignCount != key.count || keys[0].LastUsedAt.IsZero() {
		t.Fatalf("stored count %d, last used %v; want %d", keys[0].SignCount, keys[0].LastUsedAt, key.count)
	}
}

func TestPasskeyAssertionRefusals(t *testing.T) {
	tests := []struct {
		name  string
		bend  func(k, other *softKey)
		reuse bool // answer the previous ceremony's options again
	}{
		{"wrong origin", func(k, _ *softKey) { k.origin = "https://consult.example.org.evil.test" }, false},
		{"wrong relying party", func(k, _ *softKey) { k.rpID = "evil.test" }, false},
		{"user not verified", func(k, _ *softKey) { k.flags = flagUP }, false},
		{"counter went back", func(k, _ *softKey) { k.count = 0 }, false},
		{"replayed challenge", func(_, _ *softKey) {}, true},
		{"unregistered key", func(k, other *softKey) { *k = *other }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			pk := f.passkeys(t, PasskeyOptions{})
			key, other := newSoftKey(t, testOrigin), newSoftKey(t, testOrigin)
			f.registerKey(t, pk, key, "Key")
			// One good sign-in first, so the counter is above zero.
			id, _ := f.passwordStep(t)
			opts, err := pk.BeginSignIn(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			good := key.assert(t, opts)
			if _, _, err := pk.FinishSignIn(ctx, id, good, testClient); err != nil {
				t.Fatalf("good assertion: %v", err)
			}

			id, token := f.passwordStep(t)
			var answer []byte
			if tt.reuse {
				answer = good
				if _, err := pk.BeginSignIn(ctx, id); err != nil { // a fresh challenge the old answer does not match
					t.Fatal(err)
				}
			} else {
				opts, err := pk.BeginSignIn(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				tt.bend(key, other)
				answer = key.assert(t, opts)
			}
			_, _, err = pk.FinishSignIn(ctx, id, answer, testClient)
			if !errors.Is(err, ErrPasskeyRefused) {
				t.Fatalf("FinishSignIn = %v, want ErrPasskeyRefused", err)
			}
			if !slices.Contains(f.audit.types(), EventPasskeySignIn+"-") {
				t.Errorf("refusal not audited: %v", f.audit.types())
			}
			// The session is still waiting for its second factor, and the
			// ceremony is spent: the same answer cannot be tried again.
			if again := f.session(t, token); again.Stage != StageSecondFactor {
				t.Fatalf("stage after refusal = %s", again.Stage)
			}
			if _, _, err := pk.FinishSignIn(ctx, id, answer, testClient); !errors.Is(err, ErrPasskeyRefused) {
				t.Fatalf("second try = %v", err)
			}
		})
	}
}

func TestPasskeyRegistrationRefusals(t *testing.T) {
	tests := []struct {
		name string
		bend func(k *softKey)
		skip bool // finish without beginning: a challenge the server never issued
	}{
		{"wrong origin", func(k *softKey) { k.origin = "https://evil.test" }, false},
		{"wrong relying party", func(k *softKey) { k.rpID = "evil.test" }, false},
		{"challenge not issued", func(*softKey) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			pk := f.passkeys(t, PasskeyOptions{})
			key := newSoftKey(t, testOrigin)
			opts, err := pk.BeginRegistration(ctx, f.admin)
			if err != nil {
				t.Fatal(err)
			}
			answer := key.register(t, opts)
			if tt.skip {
				if _, err := pk.FinishRegistration(ctx, f.admin, "Key", answer, testClient); err != nil {
					t.Fatal(err)
				}
				key = newSoftKey(t, testOrigin)
				answer = key.register(t, opts) // the spent options again
			} else {
				tt.bend(key)
				answer = key.register(t, opts)
			}
			if _, err := pk.FinishRegistration(ctx, f.admin, "Key", answer, testClient); !errors.Is(err, ErrPasskeyRefused) {
				t.Fatalf("FinishRegistration = %v, want ErrPasskeyRefused", err)
			}
			keys, _ := f.db.Passkeys(ctx, f.admin.User.ID)
			if want := map[bool]int{true: 1, false: 0}[tt.skip]; len(keys) != want {
				t.Fatalf("%d passkeys stored, want %d", len(keys), want)
			}
		})
	}
}

func TestPasskeyAttestationCanBeRequired(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{RequireAttestation: true})
	opts, err := pk.BeginRegistration(ctx, f.admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pk.FinishRegistration(ctx, f.admin, "Key", newSoftKey(t, testOrigin).register(t, opts), testClient); !errors.Is(err, ErrPasskeyRefused) {
		t.Fatalf("unattested key = %v, want ErrPasskeyRefused", err)
	}
}

func TestPasskeyRenameAndRemoveOwnOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	info := f.registerKey(t, pk, newSoftKey(t, testOrigin), "Key")
	f.createUser(t, "dr.other", "other passphrase 1")
	other, _, _ := f.signInFully(t, "dr.other", "other passphrase 1")

	if err := pk.Rename(ctx, other, info.ID, "Mine now", testClient); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename of another's passkey = %v", err)
	}
	if err := pk.Remove(ctx, other, info.ID, testClient); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removal of another's passkey = %v", err)
	}
	if err := pk.Rename(ctx, f.admin, info.ID, "", testClient); !errors.Is(err, ErrPasskeyName) {
		t.Fatalf("empty name = %v", err)
	}
	if err := pk.Rename(ctx, f.admin, info.ID, "Office key", testClient); err != nil {
		t.Fatal(err)
	}
	if err := pk.Remove(ctx, f.admin, info.ID, testClient); err != nil {
		t.Fatal(err)
	}
	if has, err := pk.Has(ctx, f.admin.User.ID); has || err != nil {
		t.Fatalf("Has after removal = %v, %v", has, err)
	}
	if !slices.Contains(f.audit.types(), EventPasskeyRemoved+"+") {
		t.Errorf("removal not audited: %v", f.audit.types())
	}
}

func TestPasskeyCeremonyExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	key := newSoftKey(t, testOrigin)
	f.registerKey(t, pk, key, "Key")
	id, _ := f.passwordStep(t)
	opts, err := pk.BeginSignIn(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f.advance(ceremonyTTL + time.Second)
	if _, _, err := pk.FinishSignIn(ctx, id, key.assert(t, opts), testClient); !errors.Is(err, ErrPasskeyRefused) {
		t.Fatalf("late answer = %v, want ErrPasskeyRefused", err)
	}
}

func TestAdministratorRemovesAUsersPasskeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	f.createUser(t, "dr.lost", "lost passphrase 12")
	user, _, _ := f.signInFully(t, "dr.lost", "lost passphrase 12")
	for _, name := range []string{"Phone", "Laptop"} {
		opts, err := pk.BeginRegistration(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pk.FinishRegistration(ctx, user, name, newSoftKey(t, testOrigin).register(t, opts), testClient); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pk.RemoveAll(ctx, user, user.User.ID, testClient); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-admin RemoveAll = %v, want ErrForbidden", err)
	}
	if _, err := pk.RemoveAll(ctx, f.admin, "u_nobody", testClient); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user = %v", err)
	}
	n, err := pk.RemoveAll(ctx, f.admin, user.User.ID, testClient)
	if err != nil || n != 2 {
		t.Fatalf("RemoveAll = %d, %v; want 2", n, err)
	}
	if has, _ := pk.Has(ctx, user.User.ID); has {
		t.Fatal("passkeys left after RemoveAll")
	}
	last := f.audit.list[len(f.audit.list)-1]
	if last.Type != EventPasskeyRemoved || last.Requester != f.admin.User.ID || last.Fields["user"] != user.User.ID || last.Fields["passkeys"] != "2" {
		t.Fatalf("audit %+v", last)
	}
}
