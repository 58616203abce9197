package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PasswordHistoryDepth is how many past password hashes are kept per user.
const PasswordHistoryDepth = 10

// ErrTokenInvalid is returned for an account token that is unknown, used,
// expired, or of another purpose.
var ErrTokenInvalid = errors.New("link is not valid")

// ErrReplay is returned when a second-factor code or recovery code was
// already used.
var ErrReplay = errors.New("code already used")

// CreateUser adds an account that is activated later through a token (the
// row has no usable password until then) and stores the activation token's
// hash, in one transaction.
func (db *DB) CreateUser(ctx context.Context, u User, tokenHash []byte, expires time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := insertUser(ctx, db, tx, u); err != nil {
			return err
		}
		return insertToken(ctx, db, tx, tokenHash, u.ID, "activate", u.CreatedAt, expires)
	})
}

// CreateUserToken stores the hash of a single-use reset or activation token,
// replacing the user's unused tokens of that purpose.
func (db *DB) CreateUserToken(ctx context.Context, hash []byte, userID, purpose string, now, expires time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM user_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL`), userID, purpose); err != nil {
			return fmt.Errorf("drop old tokens: %w", err)
		}
		return insertToken(ctx, db, tx, hash, userID, purpose, now, expires)
	})
}

func insertToken(ctx context.Context, db *DB, tx *sql.Tx, hash []byte, userID, purpose string, now, expires time.Time) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO user_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		hash, userID, purpose, now.UnixMilli(), expires.UnixMilli())
	if err != nil {
		return fmt.Errorf("store %s token: %w", purpose, err)
	}
	return nil
}

// UserTokenOwner returns the user a live token of purpose belongs to.
func (db *DB) UserTokenOwner(ctx context.Context, hash []byte, purpose string, now time.Time) (string, error) {
	var id string
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT t.user_id FROM user_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.purpose = ? AND t.used_at IS NULL AND t.expires_at > ? AND u.disabled_at IS NULL`),
		hash, purpose, now.UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrTokenInvalid
	}
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	return id, nil
}

// SetPasswordWithToken spends the token and sets the password in one
// transaction. Activation marks the account active; either way every
// existing session of the user ends, since whoever held them may be the
// reason for the reset.
func (db *DB) SetPasswordWithToken(ctx context.Context, hash []byte, purpose, userID, passwordHash string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE user_tokens SET used_at = ?
			WHERE token_hash = ? AND purpose = ? AND user_id = ? AND used_at IS NULL AND expires_at > ?`),
			now.UnixMilli(), hash, purpose, userID, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("spend token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrTokenInvalid
		}
		if purpose == "activate" {
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET activated_at = ? WHERE id = ? AND activated_at IS NULL`), now.UnixMilli(), userID); err != nil {
				return fmt.Errorf("activate: %w", err)
			}
		}
		if err := setPassword(ctx, db, tx, userID, passwordHash, now); err != nil {
			return err
		}
		return deleteSessions(ctx, db, tx, userID)
	})
}

// SetPassword replaces a user's password, clears a forced change and records
// the hash in the history.
func (db *DB) SetPassword(ctx context.Context, userID, passwordHash string, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return setPassword(ctx, db, tx, userID, passwordHash, now) })
}

func setPassword(ctx context.Context, db *DB, tx *sql.Tx, userID, passwordHash string, now time.Time) error {
	res, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET password_hash = ?, password_changed_at = ?, must_change_password = 0 WHERE id = ?`),
		passwordHash, now.UnixMilli(), userID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return addPasswordHistory(ctx, db, tx, userID, passwordHash, now)
}

func addPasswordHistory(ctx context.Context, db *DB, tx *sql.Tx, userID, passwordHash string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO password_history (user_id, password_hash, created_at) VALUES (?, ?, ?)`),
		userID, passwordHash, now.UnixMilli()); err != nil {
		return fmt.Errorf("password history: %w", err)
	}
	_, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM password_history WHERE user_id = ? AND id NOT IN
		(SELECT id FROM password_history WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)`),
		userID, userID, PasswordHistoryDepth)
	if err != nil {
		return fmt.Errorf("trim password history: %w", err)
	}
	return nil
}

// PasswordHistory returns the user's last hashes, newest first.
func (db *DB) PasswordHistory(ctx context.Context, userID string) ([]string, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT password_hash FROM password_history WHERE user_id = ? ORDER BY created_at DESC, id DESC`), userID)
	if err != nil {
		return nil, fmt.Errorf("password history: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// SetUserFlags applies an administrator's decisions: disable, or force a
// password change at the next sign-in. Either ends every session of the
// account, so the change holds at once rather than at the next sign-in.
func (db *DB) SetUserFlags(ctx context.Context, userID string, disable, forcePasswordChange bool, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if disable {
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL`), now.UnixMilli(), userID); err != nil {
				return fmt.Errorf("disable user: %w", err)
			}
			if err := deleteSessions(ctx, db, tx, userID); err != nil {
				return err
			}
		}
		if forcePasswordChange {
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET must_change_password = 1 WHERE id = ?`), userID); err != nil {
				return fmt.Errorf("force password change: %w", err)
			}
			if err := deleteSessions(ctx, db, tx, userID); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetTOTPPending stores a sealed secret awaiting its first valid code.
func (db *DB) SetTOTPPending(ctx context.Context, userID string, secretEnc []byte) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE users SET totp_secret_enc = ?, totp_enabled_at = NULL, totp_last_step = 0 WHERE id = ?`), secretEnc, userID)
	if err != nil {
		return fmt.Errorf("store totp secret: %w", err)
	}
	return nil
}

// EnableTOTP turns the pending secret on, records the step of the confirming
// code (so it cannot be replayed) and replaces the recovery codes.
func (db *DB) EnableTOTP(ctx context.Context, userID string, step int64, codeHashes [][]byte, now time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET totp_enabled_at = ?, totp_last_step = ?
			WHERE id = ? AND totp_secret_enc IS NOT NULL AND totp_enabled_at IS NULL`), now.UnixMilli(), step, userID)
		if err != nil {
			return fmt.Errorf("enable totp: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrConflict
		}
		return replaceRecoveryCodes(ctx, db, tx, userID, codeHashes)
	})
}

func replaceRecoveryCodes(ctx context.Context, db *DB, tx *sql.Tx, userID string, codeHashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
		return fmt.Errorf("drop recovery codes: %w", err)
	}
	for _, h := range codeHashes {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)`), userID, h); err != nil {
			return fmt.Errorf("store recovery code: %w", err)
		}
	}
	return nil
}

// AcceptTOTPStep records step as used; ErrReplay when that step or a later
// one was already accepted. The compare-and-set makes two concurrent uses
// of one code impossible.
func (db *DB) AcceptTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`), step, userID, step)
	if err != nil {
		return fmt.Errorf("accept totp step: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrReplay
	}
	return nil
}

// UseRecoveryCode spends a recovery code; ErrReplay when unknown or used.
func (db *DB) UseRecoveryCode(ctx context.Context, userID string, codeHash []byte, now time.Time) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`),
		now.UnixMilli(), userID, codeHash)
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrReplay
	}
	return nil
}

// RecoveryCodesLeft counts unused recovery codes.
func (db *DB) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`), userID).Scan(&n)
	return n, err
}

// ResetTOTP removes a user's second factor and recovery codes and ends their
// sessions, so the next sign-in enrolls again.
func (db *DB) ResetTOTP(ctx context.Context, userID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET totp_secret_enc = NULL, totp_enabled_at = NULL, totp_last_step = 0 WHERE id = ?`), userID); err != nil {
			return fmt.Errorf("reset totp: %w", err)
		}
		if err := replaceRecoveryCodes(ctx, db, tx, userID, nil); err != nil {
			return err
		}
		return deleteSessions(ctx, db, tx, userID)
	})
}
