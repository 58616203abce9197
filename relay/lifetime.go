package relay

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // MESSAGE-INTEGRITY is HMAC-SHA1 (RFC 5389, 15.4)
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/pion/stun/v3"
)

// An allocation's lifetime is bounded as RFC 8656 (7.2, 7.3) asks: a
// LIFETIME below the default (ten minutes) gets the default, one above the
// maximum gets the maximum, and a Refresh with a LIFETIME of zero still
// deletes the allocation. pion/turn takes any requested lifetime below an
// hour, one second included, and answers a longer one with the default,
// so the gate rewrites the LIFETIME of such a request before pion reads it
// and signs the request again with the client's key, which it has just
// verified.

const (
	// defaultLifetime is the lifetime of an allocation whose request names
	// none, and the least a request gets.
	defaultLifetime = 10 * time.Minute
	// maxLifetime is the most an Allocate or Refresh gets: just under an
	// hour, the most pion/turn grants as asked.
	maxLifetime = time.Hour - time.Second
)

// boundedLifetime is the lifetime the relay grants for a requested one,
// in seconds.
func boundedLifetime(requested uint32, refresh bool) uint32 {
	if requested == 0 && refresh {
		return 0
	}
	return min(max(requested, uint32(defaultLifetime/time.Second)), uint32(maxLifetime/time.Second))
}

// boundLifetime rewrites, in b, the LIFETIME of an authenticated Allocate
// or Refresh m (decoded from b) to its bounded value, and signs b again.
// A request whose credential fails, or that it cannot rewrite, is left as
// it is, for pion to answer.
func (in *inspector) boundLifetime(b []byte, m *stun.Message, creds *credentials) {
	at, integrity, fingerprint := attributeOffsets(b)
	if at < 0 || integrity < 0 || at > integrity {
		return
	}
	requested := binary.BigEndian.Uint32(b[at+4:])
	bounded := boundedLifetime(requested, m.Type == typeRefresh)
	if bounded == requested {
		return
	}
	key, ok := creds.verify(m, in.s.now())
	if !ok {
		return
	}
	binary.BigEndian.PutUint32(b[at+4:], bounded)
	resign(b, integrity, fingerprint, key)
	in.s.metrics.lifetimeBounded.Inc()
}

// attributeOffsets returns where the LIFETIME, MESSAGE-INTEGRITY and
// FINGERPRINT attributes of the STUN message b start, -1 for one that is
// absent or malformed.
func attributeOffsets(b []byte) (lifetime, integrity, fingerprint int) {
	lifetime, integrity, fingerprint = -1, -1, -1
	// A message is rewritten only when it fills b exactly.
	if len(b) < 20 || len(b) != 20+int(binary.BigEndian.Uint16(b[2:4])) {
		return
	}
	end := len(b)
	for off := 20; off+4 <= end; {
		typ, n := stun.AttrType(binary.BigEndian.Uint16(b[off:])), int(binary.BigEndian.Uint16(b[off+2:]))
		if off+4+n > end {
			return -1, -1, -1
		}
		switch {
		case typ == stun.AttrLifetime && n == 4 && lifetime < 0 && integrity < 0:
			lifetime = off
		case typ == stun.AttrMessageIntegrity && n == sha1.Size && integrity < 0:
			integrity = off
		case typ == stun.AttrFingerprint && n == 4 && integrity >= 0:
			fingerprint = off
			return
		}
		off += 4 + (n+3)&^3
	}
	return
}

// resign recomputes the MESSAGE-INTEGRITY at offset integrity and the
// FINGERPRINT at offset fingerprint (if not -1) of b, as RFC 5389 (15.4,
// 15.5) defines them: each over the message before it, with the header's
// length counting up to the end of the attribute.
func resign(b []byte, integrity, fingerprint int, key []byte) {
	length := binary.BigEndian.Uint16(b[2:4])
	binary.BigEndian.PutUint16(b[2:4], uint16(integrity+4+sha1.Size-20))
	mac := hmac.New(sha1.New, key)
	mac.Write(b[:integrity])
	copy(b[integrity+4:], mac.Sum(nil))
	if fingerprint >= 0 {
		binary.BigEndian.PutUint16(b[2:4], uint16(fingerprint+8-20))
		binary.BigEndian.PutUint32(b[fingerprint+4:], crc32.ChecksumIEEE(b[:fingerprint])^0x5354554e)
	}
	binary.BigEndian.PutUint16(b[2:4], length)
}
