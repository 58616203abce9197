package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openconsult/openconsult/audit"
)

// AuditAppend stores the row build makes from the last row, in one write
// transaction (audit.Storage).
func (db *DB) AuditAppend(ctx context.Context, build func(last audit.Row) (audit.Row, error)) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var last audit.Row
		err := tx.QueryRowContext(ctx, `SELECT seq, canonical, leaf_hash FROM audit_entries ORDER BY seq DESC LIMIT 1`).
			Scan(&last.Seq, &last.Canonical, &last.LeafHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read last audit entry: %w", err)
		}
		row, err := build(last)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO audit_entries (seq, canonical, leaf_hash) VALUES (?, ?, ?)`),
			row.Seq, row.Canonical, row.LeafHash); err != nil {
			return fmt.Errorf("insert audit entry: %w", err)
		}
		return nil
	})
}

// AuditRows calls fn for every entry from seq on, in order, reading in
// batches so a long log never sits in memory whole.
func (db *DB) AuditRows(ctx context.Context, from uint64, fn func(audit.Row) error) error {
	const batch = 1000
	for {
		rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT seq, canonical, leaf_hash FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?`), from, batch)
		if err != nil {
			return fmt.Errorf("read audit entries: %w", err)
		}
		var got []audit.Row
		for rows.Next() {
			var r audit.Row
			if err := rows.Scan(&r.Seq, &r.Canonical, &r.LeafHash); err != nil {
				rows.Close()
				return err
			}
			got = append(got, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range got {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(got) < batch {
			return nil
		}
		from = got[len(got)-1].Seq + 1
	}
}

// AuditCheckpoints returns the stored checkpoints by size.
func (db *DB) AuditCheckpoints(ctx context.Context) ([]audit.StoredCheckpoint, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.StoredCheckpoint
	for rows.Next() {
		var c audit.StoredCheckpoint
		var created int64
		if err := rows.Scan(&c.Size, &c.Note, &created); err != nil {
			return nil, err
		}
		c.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// AddAuditCheckpoint stores a checkpoint; a second one at the same size
// replaces nothing and is not an error.
func (db *DB) AddAuditCheckpoint(ctx context.Context, c audit.StoredCheckpoint) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING`),
		c.Size, c.Note, c.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store checkpoint: %w", err)
	}
	return nil
}
