package store

import "context"

// Pragma reads a SQLite pragma for tests.
func Pragma(ctx context.Context, db *DB, name string) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// ExecForTest runs a statement for tests that need to corrupt or age a database.
func ExecForTest(ctx context.Context, db *DB, q string) error {
	_, err := db.sql.ExecContext(ctx, q)
	return err
}

// QueryStringForTest reads one text value, for tests that check a session
// setting.
func QueryStringForTest(ctx context.Context, db *DB, q string) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}
