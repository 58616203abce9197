package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrQuota: storing this would take the consult past its document quota.
var ErrQuota = errors.New("document quota exceeded")

// Document is a shared file: its sealed name, and either its content in
// the object store (Object and KeyEnc, the object's sealed data key) or,
// before it was moved there, sealed in DataEnc.
type Document struct {
	ID          string
	ConsultID   string
	MemberID    string
	NameEnc     []byte
	ContentType string
	Size        int64
	DataEnc     []byte
	Object      string
	KeyEnc      []byte
	CreatedAt   time.Time
	// ExpiredAt is when retention destroyed the document's key (zero:
	// never); DeletedAt when its object was deleted too and only the
	// tombstone row is left.
	ExpiredAt time.Time
	DeletedAt time.Time
}

// DocumentQuota bounds a consult's documents; a zero field is no bound.
type DocumentQuota struct {
	Files int
	Bytes int64
}

// ShareDocument stores a document and the chat message announcing it,
// which build makes for the consult's next sequence number, in one
// transaction (see AppendNextChat), unless the consult's documents would
// then exceed q (ErrQuota). The consult's row lock that orders its chat
// also serialises its quota checks.
func (db *DB) ShareDocument(ctx context.Context, d Document, q DocumentQuota, build func(seq int64) (ChatRow, error)) (ChatRow, error) {
	return db.appendNextChat(ctx, d.ConsultID, func(tx *sql.Tx) error {
		files, bytes, err := documentUsage(ctx, db, tx, d.ConsultID)
		if err != nil {
			return err
		}
		if q.Files > 0 && files+1 > q.Files || q.Bytes > 0 && bytes+d.Size > q.Bytes {
			return ErrQuota
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO documents (id, consult_id, member_id, name_enc, content_type, size, data_enc, object, key_enc, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			d.ID, d.ConsultID, d.MemberID, d.NameEnc, d.ContentType, d.Size, nonNil(d.DataEnc), nullString(d.Object), d.KeyEnc, d.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("insert document: %w", err)
		}
		return nil
	}, build)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// rowQuerier reads one row from a database or a transaction.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func documentUsage(ctx context.Context, db *DB, q rowQuerier, consultID string) (files int, bytes int64, err error) {
	err = q.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*), COALESCE(SUM(size), 0) FROM documents WHERE consult_id = ?`), consultID).Scan(&files, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("document usage: %w", err)
	}
	return files, bytes, nil
}

// DocumentUsage returns how many documents a consult holds and their bytes.
func (db *DB) DocumentUsage(ctx context.Context, consultID string) (files int, bytes int64, err error) {
	return documentUsage(ctx, db, db.sql, consultID)
}

const documentColumns = `id, consult_id, member_id, name_enc, content_type, size, data_enc, COALESCE(object, ''), key_enc, created_at, expired_at, deleted_at`

func scanDocument(scan func(...any) error) (Document, error) {
	var d Document
	var created int64
	var expired, deleted sql.NullInt64
	if err := scan(&d.ID, &d.ConsultID, &d.MemberID, &d.NameEnc, &d.ContentType, &d.Size, &d.DataEnc, &d.Object, &d.KeyEnc, &created, &expired, &deleted); err != nil {
		return Document{}, err
	}
	d.CreatedAt = time.UnixMilli(created).UTC()
	if expired.Valid {
		d.ExpiredAt = time.UnixMilli(expired.Int64).UTC()
	}
	if deleted.Valid {
		d.DeletedAt = time.UnixMilli(deleted.Int64).UTC()
	}
	return d, nil
}

// DocumentByID returns a document of a consult.
func (db *DB) DocumentByID(ctx context.Context, consultID, id string) (Document, error) {
	d, err := scanDocument(db.sql.QueryRowContext(ctx, db.rebind(`SELECT `+documentColumns+` FROM documents WHERE id = ? AND consult_id = ?`), id, consultID).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Document{}, ErrNotFound
	}
	if err != nil {
		return Document{}, fmt.Errorf("read document: %w", err)
	}
	return d, nil
}

// DocumentsToMove returns up to limit documents whose content is still
// in the database, oldest first.
func (db *DB) DocumentsToMove(ctx context.Context, limit int) ([]Document, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT `+documentColumns+` FROM documents WHERE key_enc IS NULL AND expired_at IS NULL ORDER BY created_at, id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("documents to move: %w", err)
	}
	defer rows.Close()
	var out []Document
	for rows.Next() {
		d, err := scanDocument(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("documents to move: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// MoveDocument records that a document's content now lives in object,
// under the sealed data key keyEnc, and drops it from the database. It
// reports false, changing nothing, when the document was moved already
// (by another process) or no longer exists.
func (db *DB) MoveDocument(ctx context.Context, id, object string, keyEnc []byte) (bool, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE documents SET object = ?, key_enc = ?, data_enc = ? WHERE id = ? AND key_enc IS NULL AND expired_at IS NULL`),
		object, keyEnc, []byte{}, id)
	if err != nil {
		return false, fmt.Errorf("move document %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("move document %s: %w", id, err)
	}
	return n == 1, nil
}
