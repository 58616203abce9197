package store

import (
	"context"
	"fmt"
	"time"
)

// ConsumeSAMLAssertion records that the assertion assertionID of provider
// signed someone in, until expires, and reports whether it is the first
// time; false means a replay. Records that expired by now are dropped on
// the way. One statement decides, so two servers given the same assertion
// at once accept it once.
func (db *DB) ConsumeSAMLAssertion(ctx context.Context, provider, assertionID string, expires, now time.Time) (bool, error) {
	if _, err := db.sql.ExecContext(ctx, db.rebind(`DELETE FROM saml_assertions WHERE expires_at < ?`), now.UnixMilli()); err != nil {
		return false, fmt.Errorf("drop expired saml assertions: %w", err)
	}
	res, err := db.sql.ExecContext(ctx, db.rebind(`INSERT INTO saml_assertions (provider, assertion_id, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (provider, assertion_id) DO NOTHING`), provider, assertionID, expires.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("record saml assertion: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record saml assertion: %w", err)
	}
	return n == 1, nil
}
