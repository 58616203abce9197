package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

func TestPostgres(t *testing.T)            { storetest.Run(t, storetest.OpenPostgres) }
func TestPostgresKeys(t *testing.T)        { storetest.RunKeys(t, storetest.OpenPostgres) }
func TestPostgresAudit(t *testing.T)       { storetest.RunAudit(t, storetest.OpenPostgres) }
func TestPostgresConcurrency(t *testing.T) { storetest.RunConcurrency(t, storetest.OpenPostgres) }
func TestSQLiteConcurrency(t *testing.T)   { storetest.RunConcurrency(t, openSQLite) }

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
