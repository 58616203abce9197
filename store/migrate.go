package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// Migration is one schema step, numbered from 1 without gaps.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the dialect's migrations in order, checking that the
// numbering has no gap or duplicate.
func Migrations(dialect string) ([]Migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", dialect, err)
	}
	var ms []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d: renumber the newer one", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %d (%s): versions must run 1, 2, 3... without gaps", m.Version, m.Name)
		}
	}
	return ms, nil
}

// Migrate applies every migration the database has not seen, each in its own
// transaction with its version row, and returns how many it applied. Running
// it again applies nothing. A database written by a newer release (a version
// this binary does not know) is refused rather than used. Several processes
// may start at once: on PostgreSQL they queue on an advisory lock held for
// the whole run, on SQLite on the write lock each migration takes.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	ms, err := Migrations(db.dialect)
	if err != nil {
		return 0, err
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if db.dialect == "postgres" {
		unlock, err := pgMigrationLock(ctx, conn)
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return 0, err
	}
	if current > len(ms) {
		return 0, fmt.Errorf("database schema version %d is newer than this release knows (%d): run the newer release or restore a backup", current, len(ms))
	}
	applied := 0
	for _, m := range ms[current:] {
		ok, err := db.applyMigration(ctx, conn, m)
		if err != nil {
			return applied, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}

// applyMigration runs one migration and records it, unless another process
// recorded it first; it reports whether it ran.
func (db *DB) applyMigration(ctx context.Context, conn *sql.Conn, m Migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	// Re-check inside the write lock: another node may have migrated while
	// this one waited.
	var done int
	if err := tx.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.Version).Scan(&done); err != nil {
		return false, err
	}
	if done > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.Version, m.Name, time.Now().UnixMilli()); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// migrationLockClass is the first key of the PostgreSQL advisory lock that
// serialises migrations; the second is the schema's name, so installations
// sharing a database in different schemas do not wait for each other.
const migrationLockClass = 0x6f63 // "oc"

// pgMigrationLock takes the session-level advisory lock on conn, waiting
// for a process that migrates now, and returns its release. Neither the
// wait nor a migration is cut short by the statement timeout meant for
// requests: the caller's context bounds them.
func pgMigrationLock(ctx context.Context, conn *sql.Conn) (func(), error) {
	const key = `$1, hashtext(current_schema())`
	if _, err := conn.ExecContext(ctx, `SET statement_timeout = 0`); err != nil {
		return nil, fmt.Errorf("lift the statement timeout for migrations: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+key+`)`, migrationLockClass); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // drop the connection and its setting
		return nil, fmt.Errorf("wait for the migration lock: %w", err)
	}
	return func() {
		// A fresh context: the caller's may be cancelled, and a lock left
		// behind would stall every later start until the connection closes.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+key+`)`, migrationLockClass)
		if err == nil {
			_, err = conn.ExecContext(ctx, `RESET statement_timeout`)
		}
		if err != nil {
			// Closing the connection releases the lock too.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

// SchemaVersion is the highest migration applied, 0 for an empty database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, db.sql)
}

func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}
