package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"
)

// TURNCredential mints a time-limited TURN credential in the REST format
// that turnd and coturn's static-auth-secret both accept: the username is
// "expiry:id" (Unix seconds) and the password is
// base64(HMAC-SHA1(secret, username)). id names the participant in the
// relay's logs without naming the person.
func TURNCredential(secret []byte, id string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + id
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
