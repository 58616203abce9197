package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/keyring"
)

// The data_keys table holds the data keys wrapped by the master key, which
// is never stored in the database; its master column names the master key's
// fingerprint.
var _ keyring.Storage = (*DB)(nil)

// DataKeys returns the wrapped data keys ordered by id.
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
			return nil, fmt.Errorf("read data keys: %w", err)
		}
		k.CreatedAt, k.Active = time.UnixMilli(created).UTC(), active != 0
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read data keys: %w", err)
	}
	return out, nil
}

// AddDataKey stores k as the only active data key (keyring.Storage). The
// checks run inside the write transaction, so a key wrapped by a master key
// that another process has just rotated away can never join the others.
func (db *DB) AddDataKey(ctx context.Context, k keyring.DataKey) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockDataKeys(ctx, tx); err != nil {
			return err
		}
		var clash, foreign int
		err := tx.QueryRowContext(ctx, db.rebind(`SELECT
			COUNT(CASE WHEN id = ? THEN 1 END),
			COUNT(CASE WHEN master <> ? THEN 1 END) FROM data_keys`), k.ID, k.Master).Scan(&clash, &foreign)
		if err != nil {
			return fmt.Errorf("add data key %d: %w", k.ID, err)
		}
		if clash > 0 {
			return fmt.Errorf("add data key %d: %w: %w", k.ID, ErrConflict, keyring.ErrKeysChanged)
		}
		if foreign > 0 {
			return fmt.Errorf("add data key %d: %d stored keys are wrapped by another master key: %w", k.ID, foreign, keyring.ErrKeysChanged)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE data_keys SET active = 0 WHERE active <> 0`); err != nil {
			return fmt.Errorf("retire data keys: %w", err)
		}
		_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO data_keys (id, wrapped, master, created_at, active) VALUES (?, ?, ?, ?, 1)`),
			k.ID, k.Wrapped, k.Master, k.CreatedAt.UnixMilli())
		if err != nil && isUniqueViolation(err) {
			return fmt.Errorf("add data key %d: %w: %w", k.ID, ErrConflict, keyring.ErrKeysChanged)
		}
		if err != nil {
			return fmt.Errorf("add data key %d: %w", k.ID, err)
		}
		return nil
	})
}

// RewrapDataKeys replaces the wrapping of every data key in one transaction
// (keyring.Storage), so a crash leaves all keys under the old master key or
// all under the new one. It first checks that keys is exactly the stored
// set, all under oldMaster: a key added since the caller read them would
// otherwise stay wrapped by the old master key alone.
func (db *DB) RewrapDataKeys(ctx context.Context, oldMaster string, keys []keyring.DataKey) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockDataKeys(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, master FROM data_keys`)
		if err != nil {
			return fmt.Errorf("re-wrap data keys: %w", err)
		}
		stored := map[uint32]string{}
		for rows.Next() {
			var id uint32
			var master string
			if err := rows.Scan(&id, &master); err != nil {
				rows.Close()
				return fmt.Errorf("re-wrap data keys: %w", err)
			}
			stored[id] = master
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("re-wrap data keys: %w", err)
		}
		if len(stored) != len(keys) {
			return fmt.Errorf("re-wrap data keys: %d given, %d stored: %w", len(keys), len(stored), keyring.ErrKeysChanged)
		}
		for _, k := range keys {
			master, ok := stored[k.ID]
			if !ok || master != oldMaster {
				return fmt.Errorf("re-wrap data key %d: not stored under master key %s: %w", k.ID, oldMaster, keyring.ErrKeysChanged)
			}
			delete(stored, k.ID) // a duplicate id in keys then fails the check above
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE data_keys SET wrapped = ?, master = ? WHERE id = ?`), k.Wrapped, k.Master, k.ID); err != nil {
				return fmt.Errorf("re-wrap data key %d: %w", k.ID, err)
			}
		}
		return nil
	})
}

// lockDataKeys makes the read-check-write of a data key change atomic
// against other writers (see lockForWrite).
func (db *DB) lockDataKeys(ctx context.Context, tx *sql.Tx) error {
	return db.lockForWrite(ctx, tx, "data_keys")
}

// lockForWrite makes a transaction's read-then-write of table atomic
// against other writers. SQLite needs nothing more: every transaction here
// takes the database write lock at BEGIN (_txlock=immediate). PostgreSQL's
// default isolation would let two transactions each read the same state and
// both write, so there the table is locked for the transaction in a mode
// that still lets readers through.
func (db *DB) lockForWrite(ctx context.Context, tx *sql.Tx, table string) error {
	if db.dialect != "postgres" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `LOCK TABLE `+table+` IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("lock %s: %w", table, err)
	}
	return nil
}
