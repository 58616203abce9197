package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Consult is a consult row.
type Consult struct {
	ID        string
	OwnerID   string
	TitleEnc  []byte
	RelayOnly bool
	CreatedAt time.Time
	EndedAt   time.Time
}

// ConsultLink is a guest link row.
type ConsultLink struct {
	ID        string
	ConsultID string
	TokenHash []byte
	TokenEnc  []byte
	Label     string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// Guest is someone who joined through a link.
type Guest struct {
	ID        string
	ConsultID string
	LinkID    string
	NameEnc   []byte
	CreatedAt time.Time
	// DeviceHash is the hash of the browser's device cookie, nil when it
	// sent none.
	DeviceHash []byte
	DeniedAt   time.Time
}

// ChatRow is a sealed chat message, optionally announcing a document.
type ChatRow struct {
	ConsultID  string
	Seq        int64
	MemberID   string
	NameEnc    []byte
	TextEnc    []byte
	CreatedAt  time.Time
	DocumentID string
	// Of the announced document, read with the chat:
	DocNameEnc []byte
	DocType    string
	DocSize    int64
}

// CreateConsult stores a consult and its first link.
func (db *DB) CreateConsult(ctx context.Context, c Consult, l ConsultLink) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO consults (id, owner_id, title_enc, relay_only, created_at) VALUES (?, ?, ?, ?, ?)`),
			c.ID, c.OwnerID, c.TitleEnc, boolInt(c.RelayOnly), c.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("insert consult: %w", err)
		}
		return insertLink(ctx, db, tx, l)
	})
}

// AddConsultLink stores another guest link of a consult.
func (db *DB) AddConsultLink(ctx context.Context, l ConsultLink) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return insertLink(ctx, db, tx, l) })
}

func insertLink(ctx context.Context, db *DB, tx *sql.Tx, l ConsultLink) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO consult_links (id, consult_id, token_hash, token_enc, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		l.ID, l.ConsultID, l.TokenHash, l.TokenEnc, l.Label, l.CreatedAt.UnixMilli(), l.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert link: %w", err)
	}
	return nil
}

// ConsultByID returns a consult.
func (db *DB) ConsultByID(ctx context.Context, id string) (Consult, error) {
	rows, err := db.consults(ctx, `WHERE id = ?`, id)
	if err != nil {
		return Consult{}, err
	}
	if len(rows) == 0 {
		return Consult{}, ErrNotFound
	}
	return rows[0], nil
}

// ConsultsOf lists a clinician's consults created since, newest first.
func (db *DB) ConsultsOf(ctx context.Context, ownerID string, since time.Time) ([]Consult, error) {
	return db.consults(ctx, `WHERE owner_id = ? AND created_at >= ? ORDER BY created_at DESC`, ownerID, since.UnixMilli())
}

func (db *DB) consults(ctx context.Context, where string, args ...any) ([]Consult, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT id, owner_id, title_enc, relay_only, created_at, ended_at FROM consults `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("read consults: %w", err)
	}
	defer rows.Close()
	var out []Consult
	for rows.Next() {
		var c Consult
		var relay int
		var created int64
		var ended sql.NullInt64
		if err := rows.Scan(&c.ID, &c.OwnerID, &c.TitleEnc, &relay, &created, &ended); err != nil {
			return nil, fmt.Errorf("read consults: %w", err)
		}
		c.RelayOnly, c.CreatedAt, c.EndedAt = relay != 0, time.UnixMilli(created).UTC(), fromMillis(ended)
		out = append(out, c)
	}
	return out, rows.Err()
}

// EndConsult marks a consult ended and revokes its links; ErrNotFound when
// it does not exist or already ended.
func (db *DB) EndConsult(ctx context.Context, id string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE consults SET ended_at = ? WHERE id = ? AND ended_at IS NULL`), now.UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("end consult: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE consult_links SET revoked_at = ? WHERE consult_id = ? AND revoked_at IS NULL`), now.UnixMilli(), id); err != nil {
			return fmt.Errorf("revoke links: %w", err)
		}
		return nil
	})
}

// RevokeConsultLink revokes one link and ends the sessions of the guests
// who joined with it, in one transaction.
func (db *DB) RevokeConsultLink(ctx context.Context, consultID, linkID string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE consult_links SET revoked_at = ? WHERE id = ? AND consult_id = ? AND revoked_at IS NULL`), now.UnixMilli(), linkID, consultID)
		if err != nil {
			return fmt.Errorf("revoke link: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE guest_id IN (SELECT id FROM guests WHERE link_id = ?)`), linkID); err != nil {
			return fmt.Errorf("end guest sessions of link: %w", err)
		}
		return nil
	})
}

// DenyGuest marks a guest denied (refused in the lobby or removed) and ends
// its sessions, in one transaction; ErrNotFound when there is no such guest.
func (db *DB) DenyGuest(ctx context.Context, guestID string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE guests SET denied_at = COALESCE(denied_at, ?) WHERE id = ?`), now.UnixMilli(), guestID)
		if err != nil {
			return fmt.Errorf("deny guest: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE guest_id = ?`), guestID); err != nil {
			return fmt.Errorf("end guest session: %w", err)
		}
		return nil
	})
}

// DeviceDenials counts the guests of a link, joined from the device with
// that cookie hash, who were denied.
func (db *DB) DeviceDenials(ctx context.Context, linkID string, deviceHash []byte) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM guests WHERE link_id = ? AND device_hash = ? AND denied_at IS NOT NULL`), linkID, deviceHash).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count denials: %w", err)
	}
	return n, nil
}

// ConsultLinks lists a consult's links, oldest first.
func (db *DB) ConsultLinks(ctx context.Context, consultID string) ([]ConsultLink, error) {
	return db.links(ctx, `WHERE consult_id = ? ORDER BY created_at, id`, consultID)
}

// LinkByTokenHash returns the link with that token hash, whatever its state.
func (db *DB) LinkByTokenHash(ctx context.Context, hash []byte) (ConsultLink, error) {
	ls, err := db.links(ctx, `WHERE token_hash = ?`, hash)
	if err != nil {
		return ConsultLink{}, err
	}
	if len(ls) == 0 {
		return ConsultLink{}, ErrNotFound
	}
	return ls[0], nil
}

func (db *DB) links(ctx context.Context, where string, args ...any) ([]ConsultLink, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT id, consult_id, token_hash, token_enc, label, created_at, expires_at, revoked_at FROM consult_links `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	defer rows.Close()
	var out []ConsultLink
	for rows.Next() {
		var l ConsultLink
		var created, expires int64
		var revoked sql.NullInt64
		if err := rows.Scan(&l.ID, &l.ConsultID, &l.TokenHash, &l.TokenEnc, &l.Label, &created, &expires, &revoked); err != nil {
			return nil, fmt.Errorf("read links: %w", err)
		}
		l.CreatedAt, l.ExpiresAt, l.RevokedAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC(), fromMillis(revoked)
		out = append(out, l)
	}
	return out, rows.Err()
}

// AddGuest records a guest and opens their consult-scoped session, in one
// transaction.
func (db *DB) AddGuest(ctx context.Context, g Guest, s Session) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO guests (id, consult_id, link_id, name_enc, created_at, device_hash) VALUES (?, ?, ?, ?, ?, ?)`),
			g.ID, g.ConsultID, g.LinkID, g.NameEnc, g.CreatedAt.UnixMilli(), g.DeviceHash); err != nil {
			return fmt.Errorf("insert guest: %w", err)
		}
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO sessions
			(id_hash, user_id, guest_id, consult_id, stage, created_at, last_seen_at, expires_at) VALUES (?, NULL, ?, ?, ?, ?, ?, ?)`),
			s.IDHash, s.GuestID, s.ConsultID, s.Stage, s.CreatedAt.UnixMilli(), s.LastSeenAt.UnixMilli(), s.ExpiresAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("guest session: %w", err)
		}
		return nil
	})
}

// GuestByID returns a guest.
func (db *DB) GuestByID(ctx context.Context, id string) (Guest, error) {
	var g Guest
	var created int64
	var denied sql.NullInt64
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT id, consult_id, link_id, name_enc, created_at, device_hash, denied_at FROM guests WHERE id = ?`), id).
		Scan(&g.ID, &g.ConsultID, &g.LinkID, &g.NameEnc, &created, &g.DeviceHash, &denied)
	if errors.Is(err, sql.ErrNoRows) {
		return Guest{}, ErrNotFound
	}
	if err != nil {
		return Guest{}, fmt.Errorf("read guest: %w", err)
	}
	g.CreatedAt, g.DeniedAt = time.UnixMilli(created).UTC(), fromMillis(denied)
	return g, nil
}

// AppendNextChat stores the message build makes for the consult's next
// sequence number and returns it. The number is chosen and used in one
// write transaction that excludes other appends to the consult, from this
// process or another, so each message gets its own number and none is
// refused for a number taken meanwhile. build seals the message: the
// number is part of its sealing context.
func (db *DB) AppendNextChat(ctx context.Context, consultID string, build func(seq int64) (ChatRow, error)) (ChatRow, error) {
	return db.appendNextChat(ctx, consultID, nil, build)
}

// AppendChat stores a message under the sequence number it carries; a
// number already taken is ErrConflict.
func (db *DB) AppendChat(ctx context.Context, c ChatRow) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return insertChat(ctx, db, tx, c) })
}

func (db *DB) appendNextChat(ctx context.Context, consultID string, first func(*sql.Tx) error, build func(seq int64) (ChatRow, error)) (ChatRow, error) {
	var c ChatRow
	err := db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockConsult(ctx, tx, consultID); err != nil {
			return err
		}
		var seq int64
		if err := tx.QueryRowContext(ctx, db.rebind(`SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE consult_id = ?`), consultID).Scan(&seq); err != nil {
			return fmt.Errorf("next chat seq: %w", err)
		}
		if first != nil {
			if err := first(tx); err != nil {
				return err
			}
		}
		var err error
		if c, err = build(seq); err != nil {
			return err
		}
		if c.ConsultID != consultID || c.Seq != seq {
			return fmt.Errorf("chat row %s/%d built for %s/%d", c.ConsultID, c.Seq, consultID, seq)
		}
		return insertChat(ctx, db, tx, c)
	})
	if err != nil {
		return ChatRow{}, err
	}
	return c, nil
}

// lockConsult holds a consult's row until the transaction ends, so that
// appends to its chat queue. SQLite's write lock taken at BEGIN does that
// already; on PostgreSQL the row lock does, without blocking what only
// refers to the consult (links, guests).
func (db *DB) lockConsult(ctx context.Context, tx *sql.Tx, consultID string) error {
	if db.dialect != "postgres" {
		return nil
	}
	var id string
	err := tx.QueryRowContext(ctx, db.rebind(`SELECT id FROM consults WHERE id = ? FOR NO KEY UPDATE`), consultID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("consult %s: %w", consultID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock consult %s: %w", consultID, err)
	}
	return nil
}

func insertChat(ctx context.Context, db *DB, tx *sql.Tx, c ChatRow) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO chat_messages (consult_id, seq, member_id, name_enc, text_enc, created_at, document_id) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		c.ConsultID, c.Seq, c.MemberID, c.NameEnc, c.TextEnc, c.CreatedAt.UnixMilli(), nullString(c.DocumentID))
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("chat %s/%d: %w", c.ConsultID, c.Seq, ErrConflict)
		}
		return fmt.Errorf("insert chat: %w", err)
	}
	return nil
}

// ChatRows returns a consult's chat in order.
func (db *DB) ChatRows(ctx context.Context, consultID string) ([]ChatRow, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT c.consult_id, c.seq, c.member_id, c.name_enc, c.text_enc, c.created_at,
		COALESCE(c.document_id, ''), d.name_enc, COALESCE(d.content_type, ''), COALESCE(d.size, 0)
		FROM chat_messages c LEFT JOIN documents d ON d.id = c.document_id WHERE c.consult_id = ? ORDER BY c.seq`), consultID)
	if err != nil {
		return nil, fmt.Errorf("read chat: %w", err)
	}
	defer rows.Close()
	var out []ChatRow
	for rows.Next() {
		var c ChatRow
		var created int64
		if err := rows.Scan(&c.ConsultID, &c.Seq, &c.MemberID, &c.NameEnc, &c.TextEnc, &created, &c.DocumentID, &c.DocNameEnc, &c.DocType, &c.DocSize); err != nil {
			return nil, fmt.Errorf("read chat: %w", err)
		}
		c.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
