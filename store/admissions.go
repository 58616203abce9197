package store

import (
	"context"
	"fmt"
)

// RememberAdmission stores that memberID is admitted to the consult, for a
// single server: it owns every live consult without a lease, and finds its
// members' admissions again after a restart. Replicas use AdmitMember,
// which checks the lease. Storing it again dates it anew: admitted_at is
// when the owner last saw the member connected and admitted, which bounds
// how long after losing its connection it may come back without the lobby
// (MemberAdmitted).
func (db *DB) RememberAdmission(ctx context.Context, consultID, memberID string) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO consult_admissions (consult_id, member_id, admitted_at)
		VALUES (?, ?, `+db.nowMillis()+`) ON CONFLICT (consult_id, member_id) DO UPDATE SET admitted_at = excluded.admitted_at`), consultID, memberID)
	if err != nil {
		return fmt.Errorf("store admission to consult %s: %w", consultID, err)
	}
	return nil
}

// ForgetAdmission deletes a member's admission on a single server.
func (db *DB) ForgetAdmission(ctx context.Context, consultID, memberID string) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM consult_admissions WHERE consult_id = ? AND member_id = ?`), consultID, memberID)
	if err != nil {
		return fmt.Errorf("forget admission to consult %s: %w", consultID, err)
	}
	return nil
}
