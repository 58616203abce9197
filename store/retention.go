package store

import (
	"context"
	"fmt"
	"time"
)

// DocumentsToExpire returns up to limit documents, oldest first, that
// retention must delete: those shared before cutoff in a consult not
// under legal hold, and those whose key was destroyed already but whose
// deletion did not finish (whatever the hold, since their content can no
// longer be read).
func (db *DB) DocumentsToExpire(ctx context.Context, cutoff time.Time, limit int) ([]Document, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT `+documentColumns+` FROM documents WHERE deleted_at IS NULL AND
		(expired_at IS NOT NULL OR (created_at < ? AND consult_id IN (SELECT id FROM consults WHERE legal_hold = 0)))
		ORDER BY created_at, id LIMIT ?`), cutoff.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("documents to expire: %w", err)
	}
	defer rows.Close()
	var out []Document
	for rows.Next() {
		d, err := scanDocument(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("documents to expire: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DestroyDocumentKey clears a document's sealed data key and any content
// still sealed in its row, and marks it expired at now (kept from an
// earlier call). Once it returns, no copy of the document's object can
// be decrypted. Destroying the key of a deleted document changes nothing.
func (db *DB) DestroyDocumentKey(ctx context.Context, id string, now time.Time) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE documents SET key_enc = NULL, data_enc = ?, expired_at = COALESCE(expired_at, ?) WHERE id = ? AND deleted_at IS NULL`),
		[]byte{}, now.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("destroy key of document %s: %w", id, err)
	}
	return nil
}

// MarkDocumentDeleted makes an expired document's row a tombstone once
// its object is gone. It reports false, changing nothing, when the key
// was not destroyed first or the row is a tombstone already.
func (db *DB) MarkDocumentDeleted(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE documents SET object = NULL, deleted_at = ? WHERE id = ? AND expired_at IS NOT NULL AND deleted_at IS NULL`),
		now.UnixMilli(), id)
	if err != nil {
		return false, fmt.Errorf("mark document %s deleted: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark document %s deleted: %w", id, err)
	}
	return n == 1, nil
}

// SetLegalHold places a consult under legal hold or lifts it. It reports
// whether the hold changed; ErrNotFound when there is no such consult.
func (db *DB) SetLegalHold(ctx context.Context, consultID string, hold bool) (bool, error) {
	v := 0
	if hold {
		v = 1
	}
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE consults SET legal_hold = ? WHERE id = ? AND legal_hold <> ?`), v, consultID, v)
	if err != nil {
		return false, fmt.Errorf("set legal hold of consult %s: %w", consultID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("set legal hold of consult %s: %w", consultID, err)
	}
	if n == 1 {
		return true, nil
	}
	var exists int
	if err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM consults WHERE id = ?`), consultID).Scan(&exists); err != nil {
		return false, fmt.Errorf("set legal hold of consult %s: %w", consultID, err)
	}
	if exists == 0 {
		return false, ErrNotFound
	}
	return false, nil
}
