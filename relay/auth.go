package relay

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v5"
)

// ErrMalformedUsername is returned by [ParseRESTUsername] for a username
// that is not "expiry-unix-seconds[:id]".
var ErrMalformedUsername = errors.New("relay: username is not expiry[:id]")

// maxUsernameLen is the STUN limit on USERNAME (RFC 8489, 14.3).
const maxUsernameLen = 512

// MintCredential returns a TURN REST credential for the participant id,
// valid for ttl from now: username "expiry-unix-seconds:id" (just the
// expiry when id is empty) and password base64(HMAC-SHA1(secret,
// username)). This is the format of coturn's use-auth-secret, so a relay
// holding the same secret, this one or coturn, accepts it.
//
// The id travels in clear in every TURN request; make it an opaque
// identifier, never a name. A ttl of zero or less mints an expired
// credential.
func MintCredential(secret []byte, id string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10)
	if id != "" {
		username += ":" + id
	}
	return username, RESTPassword(secret, username)
}

// RESTPassword returns base64(HMAC-SHA1(secret, username)), the password of
// a TURN REST username.
func RESTPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseRESTUsername splits a TURN REST username, "expiry-unix-seconds" or
// "expiry-unix-seconds:id", into its expiry and its id. The id is opaque:
// it may itself contain colons. A malformed username returns an error
// wrapping [ErrMalformedUsername].
func ParseRESTUsername(username string) (expiry time.Time, id string, err error) {
	if len(username) > maxUsernameLen {
		return time.Time{}, "", fmt.Errorf("%w: longer than %d bytes", ErrMalformedUsername, maxUsernameLen)
	}
	ts, id, _ := strings.Cut(username, ":")
	// Twelve digits reach beyond the year 30000; more is not a timestamp.
	if ts == "" || len(ts) > 12 || strings.Trim(ts, "0123456789") != "" {
		return time.Time{}, "", fmt.Errorf("%w: expiry is not decimal seconds", ErrMalformedUsername)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", fmt.Errorf("%w: expiry is not a positive time", ErrMalformedUsername)
	}
	return time.Unix(n, 0), id, nil
}

// Reasons of refused credentials: the reason label of
// turn_auth_failures_total and the only detail logged.
const (
	reasonMalformed   = "malformed"
	reasonExpired     = "expired"
	reasonUnknownUser = "unknown-user"
	reasonRealm       = "wrong-realm"
	reasonIntegrity   = "bad-password"
)

// credentials is one immutable set of accepted credentials; the server
// swaps the whole set to rotate.
type credentials struct {
	realm   string
	secrets [][]byte
	users   map[string]string // static long-term users: name -> password

	// matched remembers which secret signed a REST username seen with a
	// valid MESSAGE-INTEGRITY. pion/turn's AuthHandler receives only the
	// username, never the message, so it cannot try several secrets
	// itself: the gate, which sees the message first, finds the secret
	// and the AuthHandler reads it here.
	mu      sync.Mutex
	matched map[string]int
}

// maxMatched bounds the matched map; only credentials that verified can
// enter it, so its size follows the number of participants.
const maxMatched = 1 << 16

func newCredentials(realm string, secrets [][]byte, users map[string]string) (*credentials, error) {
	if len(secrets) == 0 && len(users) == 0 {
		return nil, errors.New("relay: no credentials: give an auth secret or static users")
	}
	c := &credentials{realm: realm, users: make(map[string]string, len(users)), matched: map[string]int{}}
	for i, s := range secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("relay: auth secret %d is empty", i+1)
		}
		c.secrets = append(c.secrets, append([]byte(nil), s...))
	}
	for u, p := range users {
		if u == "" || p == "" {
			return nil, errors.New("relay: static user with an empty name or password")
		}
		c.users[u] = p
	}
	return c, nil
}

// check validates a username before its key is derived: a static user, or
// a well-formed REST username that has not expired.
func (c *credentials) check(username, realm string, now time.Time) (reason string) {
	if realm != c.realm {
		return reasonRealm
	}
	if _, ok := c.users[username]; ok {
		return ""
	}
	if len(c.secrets) == 0 {
		return reasonUnknownUser
	}
	expiry, _, err := ParseRESTUsername(username)
	if err != nil {
		return reasonMalformed
	}
	if !now.Before(expiry) {
		return reasonExpired
	}
	return ""
}

// key returns the long-term key of a username that passed check: the
// static user's, or the one of the secret the gate matched, else the
// current (first) secret's.
func (c *credentials) key(username, realm string) []byte {
	if pw, ok := c.users[username]; ok {
		return turn.GenerateAuthKey(username, realm, pw)
	}
	i := 0
	if len(c.secrets) > 1 {
		c.mu.Lock()
		i = c.matched[username]
		c.mu.Unlock()
	}
	return turn.GenerateAuthKey(username, realm, RESTPassword(c.secrets[i], username))
}

// verify returns the key under which m's MESSAGE-INTEGRITY is valid, trying
// every secret for a REST username and remembering which one matched.
func (c *credentials) verify(m *stun.Message, now time.Time) ([]byte, bool) {
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, false
	}
	username := user.String()
	if c.check(username, realm.String(), now) != "" {
		return nil, false
	}
	if _, static := c.users[username]; static || len(c.secrets) == 1 {
		key := c.key(username, realm.String())
		return key, stun.MessageIntegrity(key).Check(m) == nil
	}
	for i, s := range c.secrets {
		key := turn.GenerateAuthKey(username, realm.String(), RESTPassword(s, username))
		if stun.MessageIntegrity(key).Check(m) == nil {
			c.remember(username, i, now)
			return key, true
		}
	}
	return nil, false
}

func (c *credentials) remember(username string, i int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.matched[username]; !ok && len(c.matched) >= maxMatched {
		for u := range c.matched {
			if exp, _, err := ParseRESTUsername(u); err != nil || !now.Before(exp) {
				delete(c.matched, u)
			}
		}
		if len(c.matched) >= maxMatched {
			clear(c.matched) // every entry is rebuilt by the next request that needs it
		}
	}
	c.matched[username] = i
}
