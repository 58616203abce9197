// Package redislimit keeps the site's per-address rate-limit buckets in
// Redis, so several signal servers behind one address share each budget.
//
// Each bucket is one key holding a GCRA "theoretical arrival time", updated
// by a single Lua script (atomic, clocked by the Redis server so replicas'
// clocks do not matter). Keys name the purpose and a hash of the client
// address, never the address itself, and expire once the bucket is full
// again.
package redislimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rate is a token bucket: Burst requests at once, one more every Every.
type Rate struct {
	Every time.Duration
	Burst int
}

// Timeout bounds each decision; a slower Redis counts as unreachable.
const Timeout = 250 * time.Millisecond

// gcra admits one request when the bucket has room. KEYS[1] is the bucket,
// ARGV[1] the interval between requests in milliseconds, ARGV[2] the burst.
// It answers 1 (allowed) or 0 (refused). Times are Redis's, in milliseconds.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - interval * burst > now then return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', string.format('%.0f', next - now))
return 1
`)

// Limiter decides against buckets in Redis.
type Limiter struct {
	client redis.Scripter
	prefix string
	rates  map[string]Rate
}

// New returns a limiter over client with a bucket per purpose in rates.
// Keys start with prefix, such as "openconsult:limit:".
func New(client redis.Scripter, prefix string, rates map[string]Rate) *Limiter {
	return &Limiter{client: client, prefix: prefix, rates: rates}
}

// ErrUnknownPurpose is returned for a purpose without a rate.
var ErrUnknownPurpose = errors.New("redislimit: unknown purpose")

// Allow spends one request of addr's budget for purpose. An error means
// Redis could not decide (unreachable, slow); the caller chooses what then.
func (l *Limiter) Allow(ctx context.Context, purpose, addr string) (bool, error) {
	r, ok := l.rates[purpose]
	if !ok || r.Every < time.Millisecond || r.Burst <= 0 {
		return false, fmt.Errorf("%w %q", ErrUnknownPurpose, purpose)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	n, err := gcra.Run(ctx, l.client, []string{l.Key(purpose, addr)}, r.Every.Milliseconds(), r.Burst).Int()
	if err != nil {
		return false, fmt.Errorf("redis rate limit %s: %w", purpose, err)
	}
	return n == 1, nil
}

// Key is the bucket of addr for purpose: the address is hashed (SHA-256,
// first 16 bytes) so it does not appear in Redis as written.
func (l *Limiter) Key(purpose, addr string) string {
	sum := sha256.Sum256([]byte(addr))
	return l.prefix + purpose + ":" + hex.EncodeToString(sum[:16])
}

// Options parses a redis:// or rediss:// URL into client options with short
// timeouts, so a lost Redis slows no request for long. The password comes
// from the URL or, when the URL has none, from password.
func Options(url, password string) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("redis: not a redis:// or rediss:// URL") // the URL may hold a password: not echoed
	}
	if opt.Password == "" {
		opt.Password = password
	}
	opt.DialTimeout = 500 * time.Millisecond
	opt.ReadTimeout = Timeout
	opt.WriteTimeout = Timeout
	opt.MaxRetries = -1 // a failed decision falls back at once; no retry loop
	opt.DialerRetries = 1
	return opt, nil
}
