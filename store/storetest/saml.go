package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunSAMLAssertions runs the suite of the SAML assertion ledger.
func RunSAMLAssertions(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"AssertionIsAcceptedOnceUntilItExpires", samlOnce},
		{"ConcurrentConsumersLetOneWin", samlConcurrent},
	})
}

var samlTime = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func consume(t *testing.T, db *store.DB, provider, id string, expires, now time.Time) bool {
	t.Helper()
	fresh, err := db.ConsumeSAMLAssertion(context.Background(), provider, id, expires, now)
	if err != nil {
		t.Fatal(err)
	}
	return fresh
}

func samlOnce(t *testing.T, db *store.DB) {
	exp := samlTime.Add(5 * time.Minute)
	if !consume(t, db, "adfs", "id-1", exp, samlTime) {
		t.Fatal("a new assertion is a replay")
	}
	if consume(t, db, "adfs", "id-1", exp, samlTime.Add(time.Minute)) {
		t.Fatal("the same assertion was accepted twice")
	}
	// Another provider's assertion of the same id is another assertion.
	if !consume(t, db, "okta", "id-1", exp, samlTime) {
		t.Fatal("ids are not per provider")
	}
	// Once expired, the record may go (the assertion's own validity
	// refuses it by then); a later assertion is unaffected.
	if !consume(t, db, "adfs", "id-2", exp.Add(time.Hour), exp.Add(time.Second)) {
		t.Fatal("a later assertion is a replay")
	}
	if !consume(t, db, "adfs", "id-1", exp.Add(time.Hour), exp.Add(time.Second)) {
		t.Fatal("the expired record was not dropped")
	}
}

func samlConcurrent(t *testing.T, db *store.DB) {
	const n = 8
	var wg sync.WaitGroup
	results := make(chan bool, n)
	for range n {
		wg.Go(func() {
			fresh, err := db.ConsumeSAMLAssertion(context.Background(), "adfs", "id-race", samlTime.Add(time.Minute), samlTime)
			if err != nil {
				t.Error(err)
			}
			results <- fresh
		})
	}
	wg.Wait()
	close(results)
	accepted := 0
	for fresh := range results {
		if fresh {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d servers accepted the same assertion", accepted)
	}
}

// RunSSOAccounts runs the suite of accounts linked to identity providers.
func RunSSOAccounts(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"EnableOnlyDisabledLinkedAccounts", ssoEnable},
	})
}

func ssoEnable(t *testing.T, db *store.DB) {
	ctx := context.Background()
	sso := store.User{ID: "u_sso", Username: "jane.doe", Role: "clinician", PasswordHash: store.NoPassword, CreatedAt: samlTime, ActivatedAt: samlTime}
	if err := db.CreateSSOUser(ctx, sso, "adfs", "subject-1"); err != nil {
		t.Fatal(err)
	}
	local := store.User{ID: "u_local", Username: "local.admin", Role: "admin", PasswordHash: "$argon2id$x", CreatedAt: samlTime}
	if err := db.CreateUser(ctx, local, []byte("activation hash"), samlTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if changed, err := db.EnableSSOUser(ctx, sso.ID); changed || err != nil {
		t.Fatalf("enabling an enabled account = %v, %v", changed, err)
	}
	for _, id := range []string{sso.ID, local.ID} {
		if err := db.SetUserFlags(ctx, id, true, false, samlTime); err != nil {
			t.Fatal(err)
		}
	}
	if changed, err := db.EnableSSOUser(ctx, local.ID); changed || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enabling a local account = %v, %v", changed, err)
	}
	if changed, err := db.EnableSSOUser(ctx, sso.ID); !changed || err != nil {
		t.Fatalf("enabling the disabled SSO account = %v, %v", changed, err)
	}
	for id, disabled := range map[string]bool{sso.ID: false, local.ID: true} {
		u, err := db.UserByID(ctx, id)
		if err != nil || u.DisabledAt.IsZero() == disabled {
			t.Fatalf("%s: disabled at %v (%v), want disabled %v", id, u.DisabledAt, err, disabled)
		}
	}
}
