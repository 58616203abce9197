package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAdministratorsCanBeRequiredToUseAPasskey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{RequireForAdmins: true})

	// Without a passkey yet, the administrator still signs in with the code
	// (or could never register one), but administration waits.
	f.advance(time.Minute)
	id, _ := f.passwordStep(t)
	token, _, err := pk.VerifyCode(ctx, id, f.code(t, f.secret), testClient)
	if err != nil {
		t.Fatalf("code before any passkey: %v", err)
	}
	admin := f.session(t, token)
	if need, err := pk.AdminNeedsPasskey(ctx, admin); !need || err != nil {
		t.Fatalf("AdminNeedsPasskey without one = %v, %v", need, err)
	}
	f.admin = admin
	f.registerKey(t, pk, newSoftKey(t, testOrigin), "Key")
	if need, _ := pk.AdminNeedsPasskey(ctx, admin); need {
		t.Fatal("AdminNeedsPasskey after registering one")
	}

	// With one, a valid code is refused, audited, and counts as a failure.
	f.advance(time.Minute)
	id, pending := f.passwordStep(t)
	if _, _, err := pk.VerifyCode(ctx, id, f.code(t, f.secret), testClient); !errors.Is(err, ErrPasskeyRequired) {
		t.Fatalf("administrator's code = %v, want ErrPasskeyRequired", err)
	}
	last := f.audit.list[len(f.audit.list)-1]
	if last.Type != EventSignIn || last.Success || last.Fields["reason"] != "passkey required" {
		t.Fatalf("audit %+v", last)
	}
	if s := f.session(t, pending); s.Stage != StageSecondFactor {
		t.Fatalf("stage after refused code = %s", s.Stage)
	}

	// A clinician with a passkey still may use the code.
	f.createUser(t, "dr.codes", "clinician passphrase")
	clinician, _, secret := f.signInFully(t, "dr.codes", "clinician passphrase")
	opts, err := pk.BeginRegistration(ctx, clinician)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pk.FinishRegistration(ctx, clinician, "Key", newSoftKey(t, testOrigin).register(t, opts), testClient); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Minute)
	tok, _, err := f.svc.SignIn(ctx, "dr.codes", "clinician passphrase", testClient)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pk.VerifyCode(ctx, f.session(t, tok), f.code(t, secret), testClient); err != nil {
		t.Fatalf("clinician's code = %v", err)
	}
}

func TestPasskeyRuleIsOffByDefault(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pk := f.passkeys(t, PasskeyOptions{})
	f.registerKey(t, pk, newSoftKey(t, testOrigin), "Key")
	f.advance(time.Minute)
	id, _ := f.passwordStep(t)
	if _, _, err := pk.VerifyCode(ctx, id, f.code(t, f.secret), testClient); err != nil {
		t.Fatalf("code with passkeys optional = %v", err)
	}
	if need, _ := pk.AdminNeedsPasskey(ctx, f.admin); need {
		t.Fatal("AdminNeedsPasskey with the rule off")
	}
}
