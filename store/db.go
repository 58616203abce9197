package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors a caller can act on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// DB is an open database with its dialect.
type DB struct {
	sql     *sql.DB
	dialect string
}

// Open opens the database named by dsn: "postgres://..." (or
// "postgresql://..."), "sqlite:PATH" or a bare file path.
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return OpenPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return OpenSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("unsupported database %q: use sqlite:PATH or postgres://", redact(dsn))
	default:
		return OpenSQLite(ctx, dsn)
	}
}

// OpenSQLite opens (creating if needed, readable by the owner only) the
// SQLite database at path in WAL mode with foreign keys enforced, a busy
// timeout instead of immediate lock errors, and write transactions that take
// the write lock at BEGIN so two writers queue rather than deadlock.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("empty SQLite path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database file: %w", err)
	}
	f.Close()
	q := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	conn, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := &DB{sql: conn, dialect: "sqlite"}
	if err := db.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// Pool and time limits of a PostgreSQL connection. A statement or an idle
// transaction that outlives its limit is cancelled by the server, so one
// stuck request cannot hold locks that every other request waits for. A DSN
// may set statement_timeout or idle_in_transaction_session_timeout itself.
const (
	pgMaxOpenConns     = 20
	pgMaxIdleConns     = 10
	pgConnMaxLifetime  = 30 * time.Minute
	pgConnMaxIdleTime  = 5 * time.Minute
	pgStatementTimeout = "30s"
	pgIdleTxTimeout    = "60s"
)

// OpenPostgres opens a PostgreSQL database through pgx's database/sql
// driver. The DSN's password never appears in an error.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN; say only which one failed.
		return nil, fmt.Errorf("parse database URL %s: invalid PostgreSQL connection string", redact(dsn))
	}
	for param, def := range map[string]string{
		"statement_timeout":                   pgStatementTimeout,
		"idle_in_transaction_session_timeout": pgIdleTxTimeout,
		"application_name":                    "openconsult-signal",
	} {
		if _, ok := cfg.RuntimeParams[param]; !ok {
			cfg.RuntimeParams[param] = def
		}
	}
	conn := stdlib.OpenDB(*cfg)
	conn.SetMaxOpenConns(pgMaxOpenConns)
	conn.SetMaxIdleConns(pgMaxIdleConns)
	conn.SetConnMaxLifetime(pgConnMaxLifetime)
	conn.SetConnMaxIdleTime(pgConnMaxIdleTime)
	db := &DB{sql: conn, dialect: "postgres"}
	if err := db.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s: %w", redact(dsn), scrubPassword(err, cfg.Password))
	}
	return db, nil
}

// scrubPassword removes a password from an error's text, in case a driver
// ever quotes it.
func scrubPassword(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}

// Dialect names the SQL dialect ("sqlite" or "postgres").
func (db *DB) Dialect() string { return db.dialect }

// Ping reports whether the database answers; it backs /readyz.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.sql.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// tx runs fn in a transaction, committing when fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rebind turns '?' placeholders into the dialect's form.
func (db *DB) rebind(query string) string {
	if db.dialect != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// redact drops the password of a database URL before it reaches an error.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
