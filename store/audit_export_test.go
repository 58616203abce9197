package store

import "context"

// ExecAuditForTest runs a statement with arguments on the database, for
// tests that tamper with the audit tables the way anyone with write access
// to the database file could.
func ExecAuditForTest(ctx context.Context, db *DB, q string, args ...any) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(q), args...)
	return err
}
