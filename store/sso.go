package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SSOLinkOwner returns the account linked to subject at provider, or
// ErrNotFound before its first sign-in.
func (db *DB) SSOLinkOwner(ctx context.Context, provider, subject string) (string, error) {
	var id string
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT user_id FROM sso_links WHERE provider = ? AND subject = ?`), provider, subject).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read sso link: %w", err)
	}
	return id, nil
}

// SSOLinkProvider returns the identity provider an account is linked to,
// or ErrNotFound for a local account.
func (db *DB) SSOLinkProvider(ctx context.Context, userID string) (string, error) {
	var provider string
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT provider FROM sso_links WHERE user_id = ?`), userID).Scan(&provider)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read sso link: %w", err)
	}
	return provider, nil
}

// IsSSOAccount reports whether the account is linked to an identity
// provider (and so has no local password).
func (db *DB) IsSSOAccount(ctx context.Context, userID string) (bool, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM sso_links WHERE user_id = ?`), userID).Scan(&n); err != nil {
		return false, fmt.Errorf("read sso link: %w", err)
	}
	return n > 0, nil
}

// NoPassword is the password hash of an account without a usable password.
const NoPassword = "!"

// CreateSSOUser adds an active account without a password and links it to
// subject at provider, in one transaction. ErrConflict when the username or
// the link exists already.
func (db *DB) CreateSSOUser(ctx context.Context, u User, provider, subject string) error {
	if u.PasswordHash != NoPassword {
		return errors.New("create sso user: an sso account has no password")
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := insertUser(ctx, db, tx, u); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO sso_links (provider, subject, user_id, created_at) VALUES (?, ?, ?, ?)`),
			provider, subject, u.ID, u.CreatedAt.UnixMilli())
		if err != nil && isUniqueViolation(err) {
			return fmt.Errorf("sso link %s: %w", provider, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert sso link: %w", err)
		}
		return nil
	})
}

// SetUserRole changes an account's role. The sessions stay: every request
// reads the role afresh.
func (db *DB) SetUserRole(ctx context.Context, userID, role string) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE users SET role = ? WHERE id = ?`), role, userID)
	if err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// EnableSSOUser enables again an account of an identity provider that was
// disabled, and reports whether it was disabled. ErrNotFound when the
// account is not linked to a provider: a local account is not enabled this
// way.
func (db *DB) EnableSSOUser(ctx context.Context, userID string) (bool, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE users SET disabled_at = NULL
		WHERE id = ? AND disabled_at IS NOT NULL AND EXISTS (SELECT 1 FROM sso_links WHERE user_id = users.id)`), userID)
	if err != nil {
		return false, fmt.Errorf("enable user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	linked, err := db.IsSSOAccount(ctx, userID)
	if err != nil {
		return false, err
	}
	if !linked {
		return false, ErrNotFound
	}
	return false, nil
}
