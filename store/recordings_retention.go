package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// RecordingsToExpire returns up to limit recordings, oldest first, that
// retention must delete: those started before cutoff, no longer running
// (or silent since cutoff), in a consult not under legal hold; and those
// whose keys were destroyed already but whose deletion did not finish.
func (db *DB) RecordingsToExpire(ctx context.Context, cutoff time.Time, limit int) ([]Recording, error) {
	c := cutoff.UnixMilli()
	return db.recordings(ctx, "recordings to expire", `deleted_at IS NULL AND (expired_at IS NOT NULL OR
		(started_at < ? AND (state <> ? OR updated_at < ?) AND consult_id IN (SELECT id FROM consults WHERE legal_hold = 0)))
		ORDER BY started_at, id LIMIT ?`, c, RecordingRunning, c, limit)
}

// LegalHold reports whether a consult is under legal hold.
func (db *DB) LegalHold(ctx context.Context, consultID string) (bool, error) {
	var hold int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT legal_hold FROM consults WHERE id = ?`), consultID).Scan(&hold)
	if err == sql.ErrNoRows {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("legal hold of consult %s: %w", consultID, err)
	}
	return hold != 0, nil
}

// DestroyRecordingKeys clears the sealed data key of every segment of a
// recording and marks it expired at now (kept from an earlier call); a
// recording still marked running becomes partial. Once it returns, no
// copy of the recording's objects can be decrypted.
func (db *DB) DestroyRecordingKeys(ctx context.Context, id string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE recording_segments SET key_enc = NULL WHERE file_id IN (SELECT id FROM recording_files WHERE recording_id = ?)`), id); err != nil {
			return fmt.Errorf("destroy keys of recording %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE recordings SET expired_at = COALESCE(expired_at, ?),
			state = CASE WHEN state = ? THEN ? ELSE state END WHERE id = ? AND deleted_at IS NULL`),
			now.UnixMilli(), RecordingRunning, RecordingPartial, id); err != nil {
			return fmt.Errorf("destroy keys of recording %s: %w", id, err)
		}
		return nil
	})
}

// RecordingObjects returns the names of a recording's stored objects.
func (db *DB) RecordingObjects(ctx context.Context, id string) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT s.object FROM recording_segments s JOIN recording_files f ON f.id = s.file_id WHERE f.recording_id = ? ORDER BY s.object`), id)
	if err != nil {
		return nil, fmt.Errorf("objects of recording %s: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, fmt.Errorf("objects of recording %s: %w", id, err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// MarkRecordingDeleted forgets an expired recording's segments once their
// objects are gone and marks it deleted; its files and consents stay as
// the record that it existed. It reports false, changing nothing, when
// its keys were not destroyed first or it is deleted already.
func (db *DB) MarkRecordingDeleted(ctx context.Context, id string, now time.Time) (bool, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE recordings SET deleted_at = ? WHERE id = ? AND expired_at IS NOT NULL AND deleted_at IS NULL`), now.UnixMilli(), id)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, db.rebind(`DELETE FROM recording_segments WHERE file_id IN (SELECT id FROM recording_files WHERE recording_id = ?)`), id)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("mark recording %s deleted: %w", id, err)
	}
	return n == 1, nil
}
