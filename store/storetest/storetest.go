// Package storetest is the behaviour every store dialect must show. Each
// dialect's test calls Run with a function that opens an empty database of
// that dialect, so SQLite and PostgreSQL are held to the same suite.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// Opener returns an empty, unmigrated database that the test may close.
type Opener func(t *testing.T) *store.DB

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	run(t, open, false, []suiteCase{
		{"MigrationsApplyOnEmptyDatabase", migrationsApply},
		{"MigrationsAreIdempotent", migrationsIdempotent},
		{"SetupTokenCreatesOneAccountOnly", setupTokenOnce},
		{"SetupTokenExpires", setupTokenExpires},
		{"NewSetupTokenReplacesUnusedOne", setupTokenReplaced},
		{"ConcurrentSetupCompletionsLetOneWin", setupConcurrent},
	})
	run(t, open, true, []suiteCase{{"DisplayNameShowsToPatients", displayName}})
}

// displayName: a consult's host shows by username until the account has a
// display name, then by it.
func displayName(t *testing.T, db *store.DB) {
	ctx := context.Background()
	consultID := newConsult(t, db)
	for _, want := range []string{"u_doc", "Dr. Ana Ruiz"} {
		if want != "u_doc" {
			if err := db.SetDisplayName(ctx, "u_doc", want); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := db.ConsultHostName(ctx, consultID); err != nil || got != want {
			t.Fatalf("ConsultHostName = %q, %v; want %q", got, err, want)
		}
	}
	if u, err := db.UserByID(ctx, "u_doc"); err != nil || u.DisplayName != "Dr. Ana Ruiz" {
		t.Fatalf("UserByID display name %q, %v", u.DisplayName, err)
	}
	if err := db.SetDisplayName(ctx, "u_nobody", "X"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := db.ConsultHostName(ctx, "c_nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown consult: %v", err)
	}
}

// suiteCase is one test of a suite, given a fresh database.
type suiteCase struct {
	name string
	fn   func(*testing.T, *store.DB)
}

// run runs each case on its own empty database, migrated first unless the
// case is about migrating.
func run(t *testing.T, open Opener, migrated bool, cases []suiteCase) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t)
			t.Cleanup(func() { db.Close() })
			if migrated {
				migrate(t, db)
			}
			tt.fn(t, db)
		})
	}
}

func migrate(t *testing.T, db *store.DB) {
	t.Helper()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

func migrationsApply(t *testing.T, db *store.DB) {
	ctx := context.Background()
	ms, err := store.Migrations(db.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.Migrate(ctx)
	if err != nil {
		t.Fatalf("migrate empty database: %v", err)
	}
	if n != len(ms) {
		t.Fatalf("applied %d migrations, want %d", n, len(ms))
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != len(ms) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(ms))
	}
	if c, err := db.CountUsers(ctx); err != nil || c != 0 {
		t.Fatalf("CountUsers = %d, %v; want 0", c, err)
	}
}

func migrationsIdempotent(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	for i := range 2 {
		n, err := db.Migrate(ctx)
		if err != nil || n != 0 {
			t.Fatalf("run %d: Migrate = %d, %v; want 0, nil", i+2, n, err)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func admin(id, name string) store.User {
	return store.User{ID: id, Username: name, Role: "admin", PasswordHash: "$argon2id$test", CreatedAt: t0}
}

func setupTokenOnce(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	hash := []byte("hash-of-token-1-................")
	if err := db.ReplaceSetupToken(ctx, hash, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.SetupTokenUsable(ctx, hash, t0.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("fresh token usable = %v, %v", ok, err)
	}
	if err := db.CompleteSetup(ctx, hash, t0.Add(time.Minute), admin("u1", "alice")); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if ok, _ := db.SetupTokenUsable(ctx, hash, t0.Add(2*time.Minute)); ok {
		t.Fatal("spent token still usable")
	}
	err := db.CompleteSetup(ctx, hash, t0.Add(2*time.Minute), admin("u2", "mallory"))
	if !errors.Is(err, store.ErrSetupClosed) {
		t.Fatalf("second use = %v, want ErrSetupClosed", err)
	}
	u, err := db.UserByUsername(ctx, "alice")
	if err != nil || u.Role != "admin" || !u.CreatedAt.Equal(t0) {
		t.Fatalf("UserByUsername = %+v, %v", u, err)
	}
	if _, err := db.UserByUsername(ctx, "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second account exists: %v", err)
	}
	// Even a freshly issued token cannot add an account once one exists.
	hash2 := []byte("hash-of-token-2-................")
	if err := db.ReplaceSetupToken(ctx, hash2, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteSetup(ctx, hash2, t0.Add(time.Minute), admin("u3", "eve")); !errors.Is(err, store.ErrSetupClosed) {
		t.Fatalf("token after first account = %v, want ErrSetupClosed", err)
	}
}

func setupTokenExpires(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	hash := []byte("hash-of-token-x-................")
	if err := db.ReplaceSetupToken(ctx, hash, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.SetupTokenUsable(ctx, hash, t0.Add(time.Hour)); ok {
		t.Fatal("token usable at its expiry")
	}
	if err := db.CompleteSetup(ctx, hash, t0.Add(time.Hour+time.Second), admin("u1", "alice")); !errors.Is(err, store.ErrSetupClosed) {
		t.Fatalf("expired token = %v, want ErrSetupClosed", err)
	}
}

func setupTokenReplaced(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	old, fresh := []byte("old-token-hash-................."), []byte("new-token-hash-.................")
	for _, h := range [][]byte{old, fresh} {
		if err := db.ReplaceSetupToken(ctx, h, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := db.SetupTokenUsable(ctx, old, t0); ok {
		t.Fatal("replaced token still usable")
	}
	if ok, _ := db.SetupTokenUsable(ctx, fresh, t0); !ok {
		t.Fatal("new token not usable")
	}
}

func setupConcurrent(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	hash := []byte("hash-of-token-c-................")
	if err := db.ReplaceSetupToken(ctx, hash, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.CompleteSetup(ctx, hash, t0.Add(time.Minute), admin(string(rune('a'+i)), "user"+string(rune('a'+i))))
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrSetupClosed):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if c, _ := db.CountUsers(ctx); wins != 1 || c != 1 {
		t.Fatalf("%d completions succeeded and %d accounts exist, want 1 and 1", wins, c)
	}
}
