package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/openconsult/openconsult/store"
)

// DefaultPostgresURL is the server tests use unless OPENCONSULT_TEST_POSTGRES
// names another: development and CI machines run PostgreSQL on loopback with
// trust authentication.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL returns the URL of the test server.
func PostgresURL() string {
	if u := os.Getenv("OPENCONSULT_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// OpenPostgres is an Opener: an empty PostgreSQL database of its own for
// the test, a fresh schema t_<random> that the DSN's search_path selects
// and that is dropped when the test ends. When no PostgreSQL answers the
// test is skipped with the reason, unless CI is set: there it fails.
func OpenPostgres(t *testing.T) *store.DB {
	t.Helper()
	return OpenPostgresDSN(t, NewPostgresSchema(t))
}

// OpenPostgresDSN opens dsn, failing the test on error.
func OpenPostgresDSN(t testing.TB, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// NewPostgresSchema creates an empty schema for the test, drops it when the
// test ends, and returns a DSN that works in it.
func NewPostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		msg := "no PostgreSQL answers at " + redacted(base) + " (set OPENCONSULT_TEST_POSTGRES to another server): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	schema := "t_" + strings.ToLower(rand.Text()[:16])
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
