package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Passkey is a registered WebAuthn credential of a staff account.
type Passkey struct {
	ID           string
	UserID       string
	CredentialID []byte
	Name         string
	Credential   []byte // the verified credential, encoded by the caller
	SignCount    uint32
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until first used
}

// ErrCounterRegressed is returned when an assertion's signature counter is
// not above the stored one: a sign that the credential was cloned.
var ErrCounterRegressed = errors.New("signature counter did not increase")

const passkeyColumns = `id, user_id, credential_id, name, credential, sign_count, created_at, last_used_at`

// AddPasskey stores a new credential.
func (db *DB) AddPasskey(ctx context.Context, p Passkey) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO passkeys (`+passkeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`),
		p.ID, p.UserID, p.CredentialID, p.Name, p.Credential, int64(p.SignCount), p.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("add passkey: %w", err)
	}
	return nil
}

// Passkeys returns a user's credentials, oldest first.
func (db *DB) Passkeys(ctx context.Context, userID string) ([]Passkey, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`SELECT `+passkeyColumns+` FROM passkeys WHERE user_id = ? ORDER BY created_at, id`), userID)
	if err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	defer rows.Close()
	var out []Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	return out, nil
}

// PasskeyByCredentialID returns the credential with that WebAuthn id.
func (db *DB) PasskeyByCredentialID(ctx context.Context, credentialID []byte) (Passkey, error) {
	p, err := scanPasskey(db.sql.QueryRowContext(ctx, db.rebind(`SELECT `+passkeyColumns+` FROM passkeys WHERE credential_id = ?`), credentialID))
	if errors.Is(err, sql.ErrNoRows) {
		return Passkey{}, ErrNotFound
	}
	return p, err
}

func scanPasskey(row interface{ Scan(...any) error }) (Passkey, error) {
	var p Passkey
	var count, created int64
	var used sql.NullInt64
	if err := row.Scan(&p.ID, &p.UserID, &p.CredentialID, &p.Name, &p.Credential, &count, &created, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Passkey{}, err
		}
		return Passkey{}, fmt.Errorf("read passkey: %w", err)
	}
	p.SignCount = uint32(count)
	p.CreatedAt = time.UnixMilli(created).UTC()
	if used.Valid {
		p.LastUsedAt = time.UnixMilli(used.Int64).UTC()
	}
	return p, nil
}

// RenamePasskey names one of a user's credentials.
func (db *DB) RenamePasskey(ctx context.Context, userID, id, name string) error {
	return db.oneRow(ctx, "rename passkey", `UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?`, name, id, userID)
}

// DeletePasskey removes one of a user's credentials.
func (db *DB) DeletePasskey(ctx context.Context, userID, id string) error {
	return db.oneRow(ctx, "remove passkey", `DELETE FROM passkeys WHERE id = ? AND user_id = ?`, id, userID)
}

// DeleteUserPasskeys removes every credential of a user and says how many.
func (db *DB) DeleteUserPasskeys(ctx context.Context, userID string) (int, error) {
	res, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM passkeys WHERE user_id = ?`), userID)
	if err != nil {
		return 0, fmt.Errorf("remove passkeys: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// UsePasskey records a successful assertion: the new signature counter and
// the time. A counter that does not exceed the stored one gives
// ErrCounterRegressed, except for authenticators that keep no counter (both
// zero). The check and the update are one statement, so two concurrent
// assertions with the same counter cannot both pass.
func (db *DB) UsePasskey(ctx context.Context, id string, count uint32, credential []byte, now time.Time) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE passkeys SET sign_count = ?, credential = ?, last_used_at = ?
		WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`),
		int64(count), credential, now.UnixMilli(), id, int64(count), int64(count))
	if err != nil {
		return fmt.Errorf("record passkey use: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrCounterRegressed
	}
	return nil
}

func (db *DB) oneRow(ctx context.Context, what, query string, args ...any) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(query), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// SaveCeremony keeps the state of a WebAuthn ceremony for its owner (a
// session, or a pre-sign-in cookie), replacing any earlier one of that
// owner and purging expired ones.
func (db *DB) SaveCeremony(ctx context.Context, ownerHash []byte, purpose string, data []byte, now, expires time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM webauthn_ceremonies WHERE owner_hash = ? OR expires_at <= ?`), ownerHash, now.UnixMilli()); err != nil {
			return fmt.Errorf("drop ceremony: %w", err)
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO webauthn_ceremonies (owner_hash, purpose, data, expires_at) VALUES (?, ?, ?, ?)`),
			ownerHash, purpose, data, expires.UnixMilli()); err != nil {
			return fmt.Errorf("save ceremony: %w", err)
		}
		return nil
	})
}

// TakeCeremony removes and returns the owner's live ceremony of purpose.
// It can be taken once: a second answer to the same challenge finds nothing.
func (db *DB) TakeCeremony(ctx context.Context, ownerHash []byte, purpose string, now time.Time) ([]byte, error) {
	var data []byte
	var expires int64
	var gotPurpose string
	err := db.sql.QueryRowContext(ctx, db.rebind(`DELETE FROM webauthn_ceremonies WHERE owner_hash = ? RETURNING purpose, data, expires_at`),
		ownerHash).Scan(&gotPurpose, &data, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("take ceremony: %w", err)
	}
	if gotPurpose != purpose || expires <= now.UnixMilli() {
		return nil, ErrNotFound
	}
	return data, nil
}
