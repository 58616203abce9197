package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/keyring"
)

// DataKeys returns the wrapped data keys (keyring.Storage).
func (db *DB) DataKeys(ctx context.Context) ([]keyring.DataKey, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, wrapped, master, created_at, active FROM data_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read data keys: %w", err)
	}
	defer rows.Close()
	var out []keyring.DataKey
	for rows.Next() {
		var k keyring.DataKey
		var created int64
		var active int
		if err := rows.Scan(&k.ID, &k.Wrapped, &k.Master, &created, &active); err != nil {
			return nil, err
		}
		k.CreatedAt, k.Active = time.UnixMilli(created).UTC(), active != 0
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddDataKey stores a data key as the only active one.
func (db *DB) AddDataKey(ctx context.Context, k keyring.DataKey) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE data_keys SET active = 0`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO data_keys (id, wrapped, master, created_at, active) VALUES (?, ?, ?, ?, 1)`),
			k.ID, k.Wrapped, k.Master, k.CreatedAt.UnixMilli())
		if err != nil && isUniqueViolation(err) {
			return fmt.Errorf("data key %d: %w", k.ID, ErrConflict)
		}
		return err
	})
}

// RewrapDataKeys replaces the wrapping of every given key in one
// transaction, so a crash leaves all keys under the old master or all under
// the new one.
func (db *DB) RewrapDataKeys(ctx context.Context, keys []keyring.DataKey) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			res, err := tx.ExecContext(ctx, db.rebind(`UPDATE data_keys SET wrapped = ?, master = ? WHERE id = ?`), k.Wrapped, k.Master, k.ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("data key %d: %w", k.ID, ErrNotFound)
			}
		}
		return nil
	})
}
