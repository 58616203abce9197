package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is an account row.
type User struct {
	ID                 string
	Username           string
	DisplayName        string // shown to patients; "" shows Username
	Role               string
	PasswordHash       string
	CreatedAt          time.Time
	DisabledAt         time.Time // zero while the account is enabled
	ActivatedAt        time.Time // zero until the owner chose a password
	PasswordChangedAt  time.Time
	MustChangePassword bool
	EmailEnc           []byte // sealed recovery e-mail address
	TOTPSecretEnc      []byte // sealed TOTP secret, pending until TOTPEnabledAt
	TOTPEnabledAt      time.Time
	TOTPLastStep       int64
}

// ErrSetupClosed is returned when a setup token is unknown, expired, already
// used, or an account already exists: the caller cannot tell which, and
// neither can anyone probing the link.
var ErrSetupClosed = errors.New("setup link is not valid")

// CountUsers returns the number of accounts.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// UserByUsername returns the account with that username.
func (db *DB) UserByUsername(ctx context.Context, username string) (User, error) {
	return db.userWhere(ctx, "username = ?", username)
}

// UserByID returns the account with that id.
func (db *DB) UserByID(ctx context.Context, id string) (User, error) {
	return db.userWhere(ctx, "id = ?", id)
}

const userColumns = `id, username, role, password_hash, created_at, disabled_at, activated_at,
	password_changed_at, must_change_password, email_enc, totp_secret_enc, totp_enabled_at, totp_last_step, display_name`

func (db *DB) userWhere(ctx context.Context, where string, arg any) (User, error) {
	row := db.sql.QueryRowContext(ctx, db.rebind(`SELECT `+userColumns+` FROM users WHERE `+where), arg)
	u, err := scanUser(row)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

// Users lists every account ordered by username.
func (db *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	var disabled, activated, changed, totpOn sql.NullInt64
	var mustChange int
	err := row.Scan(&u.ID, &u.Username, &u.Role, &u.PasswordHash, &created, &disabled, &activated,
		&changed, &mustChange, &u.EmailEnc, &u.TOTPSecretEnc, &totpOn, &u.TOTPLastStep, &u.DisplayName)
	if err != nil {
		return User{}, err
	}
	u.CreatedAt = time.UnixMilli(created).UTC()
	u.DisabledAt = fromMillis(disabled)
	u.ActivatedAt = fromMillis(activated)
	u.PasswordChangedAt = fromMillis(changed)
	u.TOTPEnabledAt = fromMillis(totpOn)
	u.MustChangePassword = mustChange != 0
	return u, nil
}

func fromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// SetDisplayName changes the name an account shows to patients.
func (db *DB) SetDisplayName(ctx context.Context, userID, name string) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE users SET display_name = ? WHERE id = ?`), name, userID)
	if err != nil {
		return fmt.Errorf("set display name: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrNotFound
	}
	return nil
}

// ConsultHostName is the name the clinician who owns a consult shows to
// patients: the display name, else the username.
func (db *DB) ConsultHostName(ctx context.Context, consultID string) (string, error) {
	var name, username string
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT u.display_name, u.username FROM consults c JOIN users u ON u.id = c.owner_id WHERE c.id = ?`),
		consultID).Scan(&name, &username)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read consult host: %w", err)
	}
	if name == "" {
		name = username
	}
	return name, nil
}

// ReplaceSetupToken forgets every unused setup token and stores the hash of
// a new one, so only the most recently printed link works.
func (db *DB) ReplaceSetupToken(ctx context.Context, hash []byte, created, expires time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM setup_tokens WHERE used_at IS NULL`); err != nil {
			return fmt.Errorf("drop old setup tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, db.rebind(
			`INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES (?, ?, ?)`),
			hash, created.UnixMilli(), expires.UnixMilli()); err != nil {
			return fmt.Errorf("store setup token: %w", err)
		}
		return nil
	})
}

// SetupTokenUsable reports whether the token can still create the first
// account: known, unused, unexpired, and no account exists yet.
func (db *DB) SetupTokenUsable(ctx context.Context, hash []byte, now time.Time) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM setup_tokens
		WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
		AND NOT EXISTS (SELECT 1 FROM users)`), hash, now.UnixMilli()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check setup token: %w", err)
	}
	return n == 1, nil
}

// CompleteSetup spends the token and creates the first account in one
// transaction: of two concurrent submissions exactly one succeeds, and a
// token can never create a second account. Two processes that started at
// once may each have stored a token; the lock on users (see lockForWrite)
// makes the check that no account exists hold until the insert commits.
func (db *DB) CompleteSetup(ctx context.Context, hash []byte, now time.Time, u User) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockForWrite(ctx, tx, "users"); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE setup_tokens SET used_at = ?
			WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
			AND NOT EXISTS (SELECT 1 FROM users)`), now.UnixMilli(), hash, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("spend setup token: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return ErrSetupClosed
		}
		return insertUser(ctx, db, tx, u)
	})
}

func insertUser(ctx context.Context, db *DB, tx *sql.Tx, u User) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO users
		(id, username, role, password_hash, created_at, activated_at, password_changed_at, must_change_password, email_enc, display_name)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.Username, u.Role, u.PasswordHash, u.CreatedAt.UnixMilli(), nullMillis(u.ActivatedAt),
		nullMillis(u.PasswordChangedAt), boolInt(u.MustChangePassword), u.EmailEnc, u.DisplayName)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("user %s: %w", u.ID, ErrConflict)
		}
		return fmt.Errorf("insert user: %w", err)
	}
	if u.PasswordHash != "" && !u.ActivatedAt.IsZero() {
		return addPasswordHistory(ctx, db, tx, u.ID, u.PasswordHash, u.CreatedAt)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// isUniqueViolation recognises a unique-constraint failure by the message
// both SQLite and PostgreSQL use, without importing driver error types.
func isUniqueViolation(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unique constraint") || strings.Contains(msg, "duplicate key")
}
