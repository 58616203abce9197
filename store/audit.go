package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openconsult/openconsult/audit"
)

// The audit log's tables (migration 0005_audit.sql):
//
//	audit_entries     (seq INTEGER PRIMARY KEY, canonical BLOB, leaf_hash BLOB)
//	audit_checkpoints (size INTEGER PRIMARY KEY, note BLOB, created_at BIGINT)
//
// Rows are only ever inserted. The database cannot stop someone with
// write access from changing them; audit.Verify finds out when they do.
// audit_checkpoints is a convenience copy: a writer can delete it along
// with the newest entries, which only the checkpoints kept outside the
// database (audit.CheckpointFile, syslog, a witness) then reveal.

var _ audit.Storage = (*DB)(nil)

// auditBatch is how many rows AuditRows reads per query, so that a long
// log never sits in memory whole and no read transaction stays open while
// the caller works.
const auditBatch = 1000

// AuditAppend stores the rows build makes from the last stored row, in one
// write transaction (audit.Storage). SQLite transactions here take the
// write lock at BEGIN; on PostgreSQL the transaction first locks the table
// against other writers (readers go on). Either way appends from several
// processes queue and each sees the rows the previous one committed, so
// the hash chain and the Merkle tree stay one log. The rows go in one
// statement per auditInsertRows, to keep the lock briefly.
func (db *DB) AuditAppend(ctx context.Context, build func(last audit.Row) ([]audit.Row, error)) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockForWrite(ctx, tx, "audit_entries"); err != nil {
			return err
		}
		var last audit.Row
		err := tx.QueryRowContext(ctx, `SELECT seq, canonical, leaf_hash FROM audit_entries ORDER BY seq DESC LIMIT 1`).
			Scan(&last.Seq, &last.Canonical, &last.LeafHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read last audit entry: %w", err)
		}
		rows, err := build(last)
		if err != nil {
			return err
		}
		for len(rows) > 0 {
			n := min(len(rows), auditInsertRows)
			if err := db.insertAuditRows(ctx, tx, rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	})
}

// auditInsertRows is how many rows one INSERT stores (3 parameters each,
// well under either dialect's limit).
const auditInsertRows = 256

func (db *DB) insertAuditRows(ctx context.Context, tx *sql.Tx, rows []audit.Row) error {
	var q strings.Builder
	q.WriteString(`INSERT INTO audit_entries (seq, canonical, leaf_hash) VALUES `)
	args := make([]any, 0, 3*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?)")
		args = append(args, r.Seq, r.Canonical, r.LeafHash)
	}
	if _, err := tx.ExecContext(ctx, db.rebind(q.String()), args...); err != nil {
		return fmt.Errorf("insert audit entries %d to %d: %w", rows[0].Seq, rows[len(rows)-1].Seq, err)
	}
	return nil
}

// AuditRows calls fn for every entry from seq on, in order (audit.Source).
func (db *DB) AuditRows(ctx context.Context, from uint64, fn func(audit.Row) error) error {
	for {
		got, err := db.auditRowBatch(ctx, from)
		if err != nil {
			return err
		}
		for _, r := range got {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(got) < auditBatch {
			return nil
		}
		from = got[len(got)-1].Seq + 1
	}
}

func (db *DB) auditRowBatch(ctx context.Context, from uint64) ([]audit.Row, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT seq, canonical, leaf_hash FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?`),
		int64(min(from, 1<<63-1)), auditBatch)
	if err != nil {
		return nil, fmt.Errorf("read audit entries from %d: %w", from, err)
	}
	defer rows.Close()
	got := make([]audit.Row, 0, 64)
	for rows.Next() {
		var r audit.Row
		if err := rows.Scan(&r.Seq, &r.Canonical, &r.LeafHash); err != nil {
			return nil, fmt.Errorf("read audit entry: %w", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit entries from %d: %w", from, err)
	}
	return got, nil
}

// AuditCheckpoints returns up to limit checkpoints larger than after, by
// size (audit.Source).
func (db *DB) AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]audit.StoredCheckpoint, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT size, note, created_at FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT ?`),
		int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.StoredCheckpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit checkpoints: %w", err)
	}
	return out, nil
}

// LatestAuditCheckpoint returns the largest stored checkpoint
// (audit.Storage).
func (db *DB) LatestAuditCheckpoint(ctx context.Context) (audit.StoredCheckpoint, bool, error) {
	c, err := scanCheckpoint(db.sql.QueryRowContext(ctx, `SELECT size, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return audit.StoredCheckpoint{}, false, nil
	}
	if err != nil {
		return audit.StoredCheckpoint{}, false, err
	}
	return c, true, nil
}

func scanCheckpoint(s interface{ Scan(...any) error }) (audit.StoredCheckpoint, error) {
	var c audit.StoredCheckpoint
	var created int64
	if err := s.Scan(&c.Size, &c.Note, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, err
		}
		return c, fmt.Errorf("read audit checkpoint: %w", err)
	}
	c.CreatedAt = time.UnixMilli(created).UTC()
	return c, nil
}

// AddAuditCheckpoint stores a checkpoint; when one of the same size is
// stored already (signed by another node a moment earlier) that one is
// kept (audit.Storage).
func (db *DB) AddAuditCheckpoint(ctx context.Context, c audit.StoredCheckpoint) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING`),
		c.Size, c.Note, c.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store audit checkpoint of %d entries: %w", c.Size, err)
	}
	return nil
}
