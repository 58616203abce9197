package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLeaseLost is what a write conditioned on a consult's lease returns
// when the replica no longer holds the lease at that epoch.
var ErrLeaseLost = errors.New("the consult's lease is held by another replica or epoch")

// Lease is who owns a live consult.
type Lease struct {
	Owner string
	Epoch int64
	Live  bool // the lease has not expired or been released
}

// nowMillis is the database clock in Unix milliseconds: leases expire by
// one clock, whatever the replicas' clocks say.
func (db *DB) nowMillis() string {
	if db.dialect == "postgres" {
		return `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// AcquireLease makes replica the owner of the consult for ttl unless
// another replica holds a live lease. Each acquisition raises the epoch.
// It returns the lease as it stands: Owner is replica when it was acquired.
func (db *DB) AcquireLease(ctx context.Context, consultID, replica string, ttl time.Duration) (Lease, error) {
	now := db.nowMillis()
	var epoch int64
	err := db.sql.QueryRowContext(ctx, db.rebind(`INSERT INTO consult_leases (consult_id, owner, epoch, expires_at) VALUES (?, ?, 1, `+now+` + ?)
		ON CONFLICT (consult_id) DO UPDATE SET owner = excluded.owner, epoch = consult_leases.epoch + 1, expires_at = excluded.expires_at, waiting = 0
		WHERE consult_leases.expires_at <= `+now+` OR consult_leases.owner = excluded.owner
		RETURNING epoch`), consultID, replica, ttl.Milliseconds()).Scan(&epoch)
	switch {
	case err == nil:
		return Lease{Owner: replica, Epoch: epoch, Live: true}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Lease{}, fmt.Errorf("acquire lease of consult %s: %w", consultID, err)
	}
	l, err := db.LeaseOf(ctx, consultID)
	if err != nil {
		return Lease{}, err
	}
	if !l.Live {
		// Expired between the two statements: the caller asks again.
		return Lease{}, fmt.Errorf("acquire lease of consult %s: %w", consultID, ErrConflict)
	}
	return l, nil
}

// LeaseOf returns the consult's lease; a consult no replica ever owned has
// a lease that is not Live.
func (db *DB) LeaseOf(ctx context.Context, consultID string) (Lease, error) {
	var l Lease
	var live int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT owner, epoch, CASE WHEN expires_at > `+db.nowMillis()+` THEN 1 ELSE 0 END
		FROM consult_leases WHERE consult_id = ?`), consultID).Scan(&l.Owner, &l.Epoch, &live)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, fmt.Errorf("read lease of consult %s: %w", consultID, err)
	}
	l.Live = live == 1
	return l, nil
}

// RenewLeases extends every lease replica holds by ttl in one statement and
// returns them with their epochs: a lease missing from the answer was
// taken over.
func (db *DB) RenewLeases(ctx context.Context, replica string, ttl time.Duration) (map[string]int64, error) {
	rows, err := db.sql.QueryContext(ctx, db.rebind(`UPDATE consult_leases SET expires_at = `+db.nowMillis()+` + ?
		WHERE owner = ? AND expires_at > 0 RETURNING consult_id, epoch`), ttl.Milliseconds(), replica)
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var epoch int64
		if err := rows.Scan(&id, &epoch); err != nil {
			return nil, fmt.Errorf("renew leases: %w", err)
		}
		out[id] = epoch
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return out, nil
}

// ReleaseLease gives up the lease at epoch, so that any replica may take
// the consult at once; the row and its epoch stay.
func (db *DB) ReleaseLease(ctx context.Context, consultID, replica string, epoch int64) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE consult_leases SET expires_at = 0, waiting = 0
		WHERE consult_id = ? AND owner = ? AND epoch = ?`), consultID, replica, epoch)
	if err != nil {
		return fmt.Errorf("release lease of consult %s: %w", consultID, err)
	}
	return nil
}

// SetLeaseWaiting records how many wait in the lobby of a consult the
// replica owns at epoch.
func (db *DB) SetLeaseWaiting(ctx context.Context, consultID, replica string, epoch int64, waiting int) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`UPDATE consult_leases SET waiting = ?
		WHERE consult_id = ? AND owner = ? AND epoch = ?`), waiting, consultID, replica, epoch)
	if err != nil {
		return fmt.Errorf("set waiting of consult %s: %w", consultID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// LeaseWaiting returns, for each consult with a live lease and someone in
// its lobby, how many wait.
func (db *DB) LeaseWaiting(ctx context.Context) (map[string]int, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT consult_id, waiting FROM consult_leases WHERE waiting > 0 AND expires_at > `+db.nowMillis())
	if err != nil {
		return nil, fmt.Errorf("waiting counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("waiting counts: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// AdmitMember stores that memberID is admitted to the consult, in the same
// statement that checks replica still owns the consult at epoch: a replica
// that lost the lease gets ErrLeaseLost and stores nothing. Storing it
// again dates it anew (RememberAdmission).
func (db *DB) AdmitMember(ctx context.Context, consultID, memberID, replica string, epoch int64) error {
	return db.AdmitMembers(ctx, consultID, []string{memberID}, replica, epoch)
}

// AdmitMembers is AdmitMember for several members of one consult in one
// statement: the owner dates anew the admissions of all its connected
// members at once.
func (db *DB) AdmitMembers(ctx context.Context, consultID string, memberIDs []string, replica string, epoch int64) error {
	ids := distinct(memberIDs)
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+3)
	for _, id := range ids {
		args = append(args, id)
	}
	args = append(args, consultID, replica, epoch)
	// column1 names a VALUES list's column in SQLite and PostgreSQL alike.
	res, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO consult_admissions (consult_id, member_id, admitted_at)
		SELECT l.consult_id, m.column1, `+db.nowMillis()+` FROM consult_leases l, (VALUES `+placeholders(len(ids), "(?)")+`) AS m
		WHERE l.consult_id = ? AND l.owner = ? AND l.epoch = ?
		ON CONFLICT (consult_id, member_id) DO UPDATE SET admitted_at = excluded.admitted_at`), args...)
	if err != nil {
		return fmt.Errorf("store admissions to consult %s: %w", consultID, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	return db.holds(ctx, consultID, replica, epoch)
}

// ForgetMember deletes a member's admission, under the same condition as
// AdmitMember.
func (db *DB) ForgetMember(ctx context.Context, consultID, memberID, replica string, epoch int64) error {
	res, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM consult_admissions WHERE consult_id = ? AND member_id = ?
		AND EXISTS (SELECT 1 FROM consult_leases WHERE consult_id = ? AND owner = ? AND epoch = ?)`),
		consultID, memberID, consultID, replica, epoch)
	if err != nil {
		return fmt.Errorf("forget admission to consult %s: %w", consultID, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	return db.holds(ctx, consultID, replica, epoch)
}

// holds returns ErrLeaseLost unless replica owns the consult at epoch.
func (db *DB) holds(ctx context.Context, consultID, replica string, epoch int64) error {
	l, err := db.LeaseOf(ctx, consultID)
	if err != nil {
		return err
	}
	if l.Owner != replica || l.Epoch != epoch {
		return ErrLeaseLost
	}
	return nil
}

// MemberAdmitted reports whether an admission of memberID to the consult
// is stored and was last dated (stored or stored again while the member was
// connected) no more than maxAbsence ago by the database's clock.
func (db *DB) MemberAdmitted(ctx context.Context, consultID, memberID string, maxAbsence time.Duration) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM consult_admissions WHERE consult_id = ? AND member_id = ?
		AND admitted_at >= `+db.nowMillis()+` - ?`),
		consultID, memberID, maxAbsence.Milliseconds()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read admission to consult %s: %w", consultID, err)
	}
	return n > 0, nil
}
