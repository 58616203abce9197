// Package ids owns the identifiers of accounts, guests, consults, links and
// documents: a type prefix and 96 random bits ("u_3f9c…"), safe to log
// because they say nothing about the person.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// New returns prefix + "_" + 24 hex digits.
func New(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + "_" + hex.EncodeToString(b), nil
}
