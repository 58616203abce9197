package store

import (
	"context"
	"errors"
	"fmt"
)

// SnapshotSQLite writes a consistent copy of a SQLite database to path
// (which must not exist) while the database stays in use: VACUUM INTO reads
// in one transaction, so writers carry on and the copy is one moment's state.
func (db *DB) SnapshotSQLite(ctx context.Context, path string) error {
	if db.dialect != "sqlite" {
		return errors.New("snapshot: only a SQLite database can be copied this way; use pg_dump for PostgreSQL")
	}
	if _, err := db.sql.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
