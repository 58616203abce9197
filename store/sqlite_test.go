package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

func openSQLite(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "data", "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSQLite(t *testing.T) { storetest.Run(t, openSQLite) }

func TestSQLitePragmas(t *testing.T) {
	db := openSQLite(t)
	defer db.Close()
	path := filepath.Join(t.TempDir(), "p.db")
	db2, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000", "synchronous": "2"} {
		got, err := store.Pragma(context.Background(), db2, pragma)
		if err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %o, want 600", perm)
	}
}

func TestOpenRejectsUnknownDatabases(t *testing.T) {
	for _, dsn := range []string{"mysql://root:secret@localhost/db", ""} {
		_, err := store.Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error leaks the password: %v", dsn, err)
		}
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.ExecForTest(ctx, db, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "newer than this release") {
		t.Fatalf("Migrate on a newer schema = %v", err)
	}
}

func TestSQLiteSAMLAssertions(t *testing.T) { storetest.RunSAMLAssertions(t, openSQLite) }

func TestSQLiteSSOAccounts(t *testing.T) { storetest.RunSSOAccounts(t, openSQLite) }
