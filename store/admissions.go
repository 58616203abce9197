package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// RememberAdmission stores that memberID is admitted to the consult, for a
// single server: it owns every live consult without a lease, and finds its
// members' admissions again after a restart. Replicas use AdmitMember,
// which checks the lease. Storing it again dates it anew: admitted_at is
// when the owner last saw the member connected and admitted, which bounds
// how long after losing its connection it may come back without the lobby
// (MemberAdmitted).
func (db *DB) RememberAdmission(ctx context.Context, consultID, memberID string) error {
	return db.RememberAdmissions(ctx, consultID, []string{memberID})
}

// RememberAdmissions is RememberAdmission for several members of one
// consult in one statement: the server dates anew the admissions of all
// the consult's connected members at once.
func (db *DB) RememberAdmissions(ctx context.Context, consultID string, memberIDs []string) error {
	ids := distinct(memberIDs)
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(ids))
	for _, id := range ids {
		args = append(args, consultID, id)
	}
	_, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO consult_admissions (consult_id, member_id, admitted_at)
		VALUES `+placeholders(len(ids), "(?, ?, "+db.nowMillis()+")")+`
		ON CONFLICT (consult_id, member_id) DO UPDATE SET admitted_at = excluded.admitted_at`), args...)
	if err != nil {
		return fmt.Errorf("store admissions to consult %s: %w", consultID, err)
	}
	return nil
}

// distinct returns ids sorted without repeats: an upsert may not touch a
// row twice (PostgreSQL refuses).
func distinct(ids []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// placeholders repeats row n times, separated by commas.
func placeholders(n int, row string) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// ForgetAdmission deletes a member's admission on a single server.
func (db *DB) ForgetAdmission(ctx context.Context, consultID, memberID string) error {
	_, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM consult_admissions WHERE consult_id = ? AND member_id = ?`), consultID, memberID)
	if err != nil {
		return fmt.Errorf("forget admission to consult %s: %w", consultID, err)
	}
	return nil
}
