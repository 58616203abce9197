package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

func TestPostgres(t *testing.T)            { storetest.Run(t, storetest.OpenPostgres) }
func TestPostgresKeys(t *testing.T)        { storetest.RunKeys(t, storetest.OpenPostgres) }
func TestPostgresAudit(t *testing.T)       { storetest.RunAudit(t, storetest.OpenPostgres) }
func TestPostgresDocuments(t *testing.T)   { storetest.RunDocuments(t, storetest.OpenPostgres) }
func TestPostgresConcurrency(t *testing.T) { storetest.RunConcurrency(t, storetest.OpenPostgres) }
func TestSQLiteConcurrency(t *testing.T)   { storetest.RunConcurrency(t, openSQLite) }
func TestPostgresRetention(t *testing.T)   { storetest.RunRetention(t, storetest.OpenPostgres) }
func TestPostgresRecordings(t *testing.T)  { storetest.RunRecordings(t, storetest.OpenPostgres) }
func TestPostgresLeases(t *testing.T)      { storetest.RunLeases(t, storetest.OpenPostgres) }
func TestSQLiteLeases(t *testing.T)        { storetest.RunLeases(t, openSQLite) }

// TestDialectsHaveTheSameMigrations fails when a migration is added to one
// dialect without its twin in the other.
func TestDialectsHaveTheSameMigrations(t *testing.T) {
	names := map[string][]string{}
	for _, d := range []string{"sqlite", "postgres"} {
		ms, err := store.Migrations(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			names[d] = append(names[d], m.Name)
		}
	}
	if !slices.Equal(names["sqlite"], names["postgres"]) {
		t.Fatalf("migrations differ between dialects:\nsqlite   %v\npostgres %v\nevery migration needs a twin of the same number and name in store/migrations/<dialect>",
			names["sqlite"], names["postgres"])
	}
}

func TestPostgresErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cretpw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", // nothing listens on port 1
		"postgres://u:s3cretpw@127.0.0.1:5432/db?sslmode=bogus",
		"postgresql://u:s3cretpw@[::1/db",
	} {
		_, err := store.Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}

func TestPostgresSessionsAreTimeLimited(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.NewPostgresSchema(t)
	db := storetest.OpenPostgresDSN(t, dsn)
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Migrations lift the timeout on their connection, and must put it back
	// before the connection serves requests again.
	for setting, want := range map[string]string{"statement_timeout": "30s", "idle_in_transaction_session_timeout": "1min"} {
		if got, err := store.QueryStringForTest(ctx, db, "SHOW "+setting); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", setting, got, err, want)
		}
	}
	short := storetest.OpenPostgresDSN(t, dsn+"&statement_timeout=100ms")
	defer short.Close()
	if _, err := store.QueryStringForTest(ctx, short, "SELECT pg_sleep(2)::text"); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("a statement past the URL's statement_timeout = %v", err)
	}
}

// TestSetupWithTwoLiveTokensCreatesOneAccount: two processes starting at
// once may each store a setup token before seeing the other's. Completing
// both at once must still create one account only.
func TestSetupWithTwoLiveTokensCreatesOneAccount(t *testing.T) {
	for _, tt := range []struct {
		name string
		open storetest.Opener
	}{{"sqlite", openSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := tt.open(t)
			defer db.Close()
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
			const rounds = 10
			for r := range rounds {
				if err := store.ExecAuditForTest(ctx, db, `DELETE FROM users`); err != nil {
					t.Fatal(err)
				}
				hashes := [][]byte{fmt.Appendf(nil, "token-a-%d", r), fmt.Appendf(nil, "token-b-%d", r)}
				for _, h := range hashes {
					if err := store.ExecAuditForTest(ctx, db, `INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES (?, ?, ?)`,
						h, now.UnixMilli(), now.Add(time.Hour).UnixMilli()); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				for i, h := range hashes {
					wg.Go(func() {
						u := store.User{ID: fmt.Sprintf("u_%d_%d", r, i), Username: fmt.Sprintf("admin-%d-%d", r, i), Role: "admin", PasswordHash: "$argon2id$test", CreatedAt: now}
						if err := db.CompleteSetup(ctx, h, now.Add(time.Minute), u); err != nil && !errors.Is(err, store.ErrSetupClosed) {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if n, err := db.CountUsers(ctx); err != nil || n != 1 {
					t.Fatalf("round %d: %d accounts after two setups at once, %v; want 1", r, n, err)
				}
			}
		})
	}
}

func TestPostgresSAMLAssertions(t *testing.T) {
	storetest.RunSAMLAssertions(t, storetest.OpenPostgres)
}

func TestPostgresSSOAccounts(t *testing.T) { storetest.RunSSOAccounts(t, storetest.OpenPostgres) }
