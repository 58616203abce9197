package relay

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ParseRESTUsername reads the expiry of a TURN REST username,
// "expiry-unix-seconds[:id]". The id is opaque to the relay.
func ParseRESTUsername(username string) (expiry time.Time, id string, err error) {
	ts, id, _ := strings.Cut(username, ":")
	if ts == "" || len(ts) > 12 {
		return time.Time{}, "", errors.New("username is not expiry[:id]")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", errors.New("username is not expiry[:id]")
	}
	return time.Unix(n, 0), id, nil
}

// restPassword is base64(HMAC-SHA1(secret, username)), the password that
// signal and coturn derive for a REST username.
func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SecretID names a shared secret without revealing it. Credentials carry it
// after the participant id, so a relay holding several secrets during a
// rotation knows which one signed a username; coturn ignores it.
func SecretID(secret []byte) string {
	h := sha1.Sum(append([]byte("openconsult turn secret id:"), secret...))
	return base64.RawURLEncoding.EncodeToString(h[:6])
}

// MintCredential makes a REST credential for participant id valid for ttl:
// username "expiry:id.secretID", password base64(HMAC-SHA1(secret, username)).
func MintCredential(secret []byte, id string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + id + "." + SecretID(secret)
	return username, restPassword(secret, username)
}

// secretFor picks the secret a username names, or the first (current) one
// for usernames minted by other tools.
func secretFor(secrets [][]byte, id string) []byte {
	if i := strings.LastIndexByte(id, '.'); i >= 0 {
		want := id[i+1:]
		for _, s := range secrets {
			if hmac.Equal([]byte(SecretID(s)), []byte(want)) {
				return s
			}
		}
	}
	return secrets[0]
}
