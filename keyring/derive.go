package keyring

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// DeriveKey returns a 32-byte key for one purpose (such as encrypting
// backups) derived from the master key with HKDF-SHA256 and salt, so the
// master key itself never encrypts anything but data keys.
func (m MasterKey) DeriveKey(purpose string, salt []byte) ([32]byte, error) {
	var out [32]byte
	if m.isZero() {
		return out, errZeroMaster
	}
	b, err := hkdf.Key(sha256.New, m.key[:], salt, "openconsult "+purpose, len(out))
	if err != nil {
		return out, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}
