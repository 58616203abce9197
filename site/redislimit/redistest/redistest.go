// Package redistest connects tests to the Redis they run against.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/site/redislimit"
)

// Open connects to the Redis of the tests (OPENCONSULT_TEST_REDIS, a
// redis:// URL or host:port, default 127.0.0.1:6379). It returns the URL,
// a client closed when the test ends, and a fresh key prefix whose keys are
// deleted then. Without a Redis the test is skipped, or fails when CI is
// set.
func Open(t testing.TB) (url string, client *redis.Client, prefix string) {
	t.Helper()
	url = os.Getenv("OPENCONSULT_TEST_REDIS")
	if url == "" {
		url = "127.0.0.1:6379"
	}
	if !strings.Contains(url, "://") {
		url = "redis://" + url
	}
	opt, err := redislimit.Options(url, "")
	if err != nil {
		t.Fatalf("OPENCONSULT_TEST_REDIS: %v", err)
	}
	client = redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis at %s does not answer (needed when CI is set): %v", opt.Addr, err)
		}
		t.Skipf("no Redis answers at %s (set OPENCONSULT_TEST_REDIS): %v", opt.Addr, err)
	}
	prefix = "openconsult-test:" + hex.EncodeToString(randomBytes(8)) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if keys, _ := client.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			client.Del(ctx, keys...)
		}
	})
	return url, client, prefix
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
