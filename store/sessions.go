package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a server-side session row. Exactly one of UserID and GuestID is
// set; a guest session is scoped to ConsultID.
type Session struct {
	IDHash     []byte
	UserID     string
	GuestID    string
	ConsultID  string
	Stage      string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute end, whatever the activity
}

// CreateSession stores a session.
func (db *DB) CreateSession(ctx context.Context, s Session) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO sessions
		(id_hash, user_id, guest_id, consult_id, stage, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		s.IDHash, nullString(s.UserID), nullString(s.GuestID), nullString(s.ConsultID), s.Stage,
		s.CreatedAt.UnixMilli(), s.LastSeenAt.UnixMilli(), s.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByHash returns a session by the hash of its id.
func (db *DB) SessionByHash(ctx context.Context, hash []byte) (Session, error) {
	var s Session
	var user, guest, consult sql.NullString
	var created, seen, expires int64
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT id_hash, user_id, guest_id, consult_id, stage, created_at, last_seen_at, expires_at
		FROM sessions WHERE id_hash = ?`), hash).Scan(&s.IDHash, &user, &guest, &consult, &s.Stage, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	s.UserID, s.GuestID, s.ConsultID = user.String, guest.String, consult.String
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC(), time.UnixMilli(expires).UTC()
	return s, nil
}

// TouchSession records activity for the idle timeout.
func (db *DB) TouchSession(ctx context.Context, hash []byte, now time.Time) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?`), now.UnixMilli(), hash)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// ReplaceSession swaps a session for a new id at a new stage in one step, so
// an id seen before a privilege change (sign-in, second factor) is worthless
// after it.
func (db *DB) ReplaceSession(ctx context.Context, oldHash []byte, s Session) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE id_hash = ?`), oldHash)
		if err != nil {
			return fmt.Errorf("drop session: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO sessions
			(id_hash, user_id, guest_id, consult_id, stage, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			s.IDHash, nullString(s.UserID), nullString(s.GuestID), nullString(s.ConsultID), s.Stage,
			s.CreatedAt.UnixMilli(), s.LastSeenAt.UnixMilli(), s.ExpiresAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// DeleteSession ends one session.
func (db *DB) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE id_hash = ?`), hash)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many.
func (db *DB) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE user_id = ?`), userID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func deleteSessions(ctx context.Context, db *DB, tx *sql.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions past their absolute end or idle
// since before idleBefore.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?`), now.UnixMilli(), idleBefore.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("expire sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// SigninLockedUntil returns when the username's lockout ends (zero if none).
func (db *DB) SigninLockedUntil(ctx context.Context, username string) (time.Time, error) {
	var until int64
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT locked_until FROM signin_failures WHERE username = ?`), username).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) || until == 0 {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read lockout: %w", err)
	}
	return time.UnixMilli(until).UTC(), nil
}

// RecordSigninFailure counts a failure for username; at max failures it
// locks the username until now+lockFor and restarts the count. It reports
// whether this failure started a lockout. The count is raised by one
// statement that reads and writes the row at once, which also holds the
// row until the transaction ends, so concurrent failures from any number
// of processes each count: parallel guessing cannot slip past the lockout.
func (db *DB) RecordSigninFailure(ctx context.Context, username string, now time.Time, max int, lockFor time.Duration) (locked bool, err error) {
	err = db.tx(ctx, func(tx *sql.Tx) error {
		// An expired lockout starts a fresh count.
		var failures int
		err := tx.QueryRowContext(ctx, db.rebind(`INSERT INTO signin_failures AS f (username, failures, locked_until) VALUES (?, 1, 0)
			ON CONFLICT (username) DO UPDATE SET
				failures = CASE WHEN f.locked_until <> 0 AND f.locked_until <= ? THEN 1 ELSE f.failures + 1 END,
				locked_until = CASE WHEN f.locked_until <> 0 AND f.locked_until <= ? THEN 0 ELSE f.locked_until END
			RETURNING failures`), username, now.UnixMilli(), now.UnixMilli()).Scan(&failures)
		if err != nil {
			return fmt.Errorf("record failure: %w", err)
		}
		if failures < max {
			return nil
		}
		locked = true
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE signin_failures SET failures = 0, locked_until = ? WHERE username = ?`),
			now.Add(lockFor).UnixMilli(), username); err != nil {
			return fmt.Errorf("lock out: %w", err)
		}
		return nil
	})
	return locked, err
}

// ClearSigninFailures forgets the failures of a username after a success.
func (db *DB) ClearSigninFailures(ctx context.Context, username string) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM signin_failures WHERE username = ?`), username)
	if err != nil {
		return fmt.Errorf("clear failures: %w", err)
	}
	return nil
}
