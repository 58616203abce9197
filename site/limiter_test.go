package site

import (
	"bytes"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/site/redislimit"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// limiterSite is a site whose rate limits go to shared, logging into log.
func limiterSite(t *testing.T, shared Limiter, log *bytes.Buffer) *Site {
	t.Helper()
	s, err := New(Options{Log: slog.New(slog.NewTextHandler(log, nil)), Limiter: shared})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testRedis is the Redis of the tests and a fresh key prefix.
func testRedis(t *testing.T) (url, prefix string, client *redis.Client) {
	t.Helper()
	url, client, prefix = redistest.Open(t)
	return url, prefix, client
}

func redisLimiter(t *testing.T, url, prefix string) *redislimit.Limiter {
	t.Helper()
	opt, err := redislimit.Options(url, "")
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	rates := map[string]redislimit.Rate{}
	for p, r := range Rates() {
		rates[p] = redislimit.Rate{Every: r.Every, Burst: r.Burst}
	}
	return redislimit.New(client, prefix, rates)
}

func allowed(s *Site, purpose, addr string, n int) int {
	got := 0
	for range n {
		r := httptest.NewRequest("POST", "/signin", nil)
		r.RemoteAddr = addr + ":40000"
		if s.allow(r, purpose) {
			got++
		}
	}
	return got
}

func TestUnreachableSharedLimiterFallsBackToLocalBuckets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "redis://" + ln.Addr().String() + "/0"
	ln.Close()
	var log bytes.Buffer
	s := limiterSite(t, redisLimiter(t, down, "x:"), &log)
	if got := allowed(s, limitSignIn, "192.0.2.1", 12); got != 10 {
		t.Fatalf("%d of 12 sign-ins allowed with Redis down, want this server's 10", got)
	}
	if got := allowed(s, limitJoin, "192.0.2.1", 1); got != 1 {
		t.Fatal("joins were refused with Redis down")
	}
	if n := strings.Count(log.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for 13 failed decisions, want 1:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), "192.0.2.1") {
		t.Fatalf("the client's address was logged:\n%s", log.String())
	}
}

func TestSitesShareTheRedisBudget(t *testing.T) {
	url, prefix, _ := testRedis(t)
	a := redisLimiter(t, url, prefix)
	var log bytes.Buffer
	one, two := limiterSite(t, a, &log), limiterSite(t, redisLimiter(t, url, prefix), &log)
	if got := allowed(one, limitSignIn, "192.0.2.1", 6); got != 6 {
		t.Fatalf("first server allowed %d of 6", got)
	}
	if got := allowed(two, limitSignIn, "192.0.2.1", 6); got != 4 {
		t.Fatalf("second server allowed %d of 6, want the 4 left of the shared 10", got)
	}
	if got := allowed(two, limitCode, "192.0.2.1", 1); got != 1 {
		t.Fatal("codes were refused after sign-ins spent their budget")
	}
	if log.Len() != 0 {
		t.Fatalf("logged with Redis up:\n%s", log.String())
	}
}

func TestSharedLimiterIsAskedAgainAfterAFailure(t *testing.T) {
	url, prefix, client := testRedis(t)
	shared := redisLimiter(t, url, prefix)
	ctx := t.Context()
	key := shared.Key(limitSignIn, "192.0.2.1")
	var log bytes.Buffer
	s := limiterSite(t, shared, &log)
	// Within sharedRetry of a failure the site decides alone...
	s.sharedDownUntil.Store(time.Now().Add(time.Hour).UnixNano())
	allowed(s, limitSignIn, "192.0.2.1", 1)
	if n := client.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("Redis was asked within the retry interval")
	}
	// ...and asks Redis again once it has passed.
	s.sharedDownUntil.Store(time.Now().Add(-time.Second).UnixNano())
	allowed(s, limitSignIn, "192.0.2.1", 1)
	if n := client.Exists(ctx, key).Val(); n != 1 {
		t.Fatal("Redis was not asked after the retry interval")
	}
}
