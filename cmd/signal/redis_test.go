package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/site/redislimit"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// testRedisURL is the Redis of the tests.
func testRedisURL(t *testing.T) (string, *redis.Client) {
	t.Helper()
	url, client, _ := redistest.Open(t)
	return url, client
}

func TestRedisSharesRateLimitsBetweenServers(t *testing.T) {
	u, client := testRedisURL(t)
	// A client address of its own, so runs do not share buckets.
	ip := fmt.Sprintf("2001:db8::%x:%x", rand.Uint32()>>16, rand.Uint32()>>16)
	keys := redislimit.New(client, redisKeyPrefix, nil)
	t.Cleanup(func() { client.Del(context.Background(), keys.Key("reset", ip)) })

	args := []string{"-trusted-proxy", "127.0.0.0/8", "-redis", u}
	one := startDev(t, t.TempDir(), args...)
	defer one.stop()
	two := startDev(t, t.TempDir(), args...)
	defer two.stop()
	from := http.Header{"X-Forwarded-For": {ip}}
	form := url.Values{"username": {"nobody.here"}}
	for i := range 10 {
		d := one
		if i%2 == 1 {
			d = two
		}
		if code := d.post(t, "/reset", form, from); code != http.StatusOK {
			t.Fatalf("request %d = %d, want 200", i+1, code)
		}
	}
	for _, d := range []*devServer{one, two} {
		if code := d.post(t, "/reset", form, from); code != http.StatusTooManyRequests {
			t.Fatalf("request past the shared budget = %d, want 429 from either server", code)
		}
	}
}

func TestRedisURLErrorHidesThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"-dev", "-redis", "http://:hunter2@cache.internal:6379"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-redis") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad -redis error %v", err)
	}
}
