package redisbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A replica's heartbeat is a Redis key that expires. Its value says until
// when the replica lives and is authenticated, so that a client of the
// Redis without the bus key cannot keep a dead replica looking alive (by
// writing its key, or by writing back a genuine value after it expired):
//
//	hb1.<expiry, Unix milliseconds>.<tag>[.<tag>]
//
// Each tag is HMAC-SHA256, base64url, under a heartbeat key derived from a
// bus key (one tag per key during a rotation of the master key), over the
// Redis key and the expiry. A reader accepts a value one of whose tags
// verifies under one of its keys and whose expiry, give or take maxSkew,
// has not passed. Such a client can still delete a heartbeat or spoil it,
// which makes the replica look dead: the tabs it serves through other
// replicas reconnect, and its consults may move, which costs a reconnection,
// never a consult on two replicas (the lease's epoch fences the owner).

const heartbeatVersion = "hb1"

// heartbeatKeys are the keys heartbeats are tagged with, the current
// key's first.
type heartbeatKeys [][]byte

// newHeartbeatKey derives the heartbeat key from a bus key, so that no
// heartbeat tag is computed with the key that seals messages.
func newHeartbeatKey(busKey []byte) []byte {
	m := hmac.New(sha256.New, busKey)
	m.Write([]byte("openconsult bus heartbeat key v1"))
	return m.Sum(nil)
}

func heartbeatTag(key []byte, redisKey string, expiry int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(redisKey))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(expiry, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// value returns the heartbeat of redisKey valid until expiry.
func (ks heartbeatKeys) value(redisKey string, expiry time.Time) string {
	ms := expiry.UnixMilli()
	parts := []string{heartbeatVersion, strconv.FormatInt(ms, 10)}
	for _, k := range ks {
		parts = append(parts, heartbeatTag(k, redisKey, ms))
	}
	return strings.Join(parts, ".")
}

// verify reports whether v is a genuine heartbeat of redisKey still valid
// at now.
func (ks heartbeatKeys) verify(redisKey, v string, now time.Time) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 3 || len(parts) > 2+4 || parts[0] != heartbeatVersion {
		return false
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Add(-maxSkew).UnixMilli() > ms {
		return false
	}
	for _, k := range ks {
		want := heartbeatTag(k, redisKey, ms)
		for _, tag := range parts[2:] {
			if hmac.Equal([]byte(tag), []byte(want)) {
				return true
			}
		}
	}
	return false
}
