package redislimit_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/site/redislimit"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// testRedis is the Redis of the tests and a fresh key prefix.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	_, client, prefix := redistest.Open(t)
	return client, prefix
}

func allowN(t *testing.T, l *redislimit.Limiter, purpose, addr string, n int) int {
	t.Helper()
	allowed := 0
	for range n {
		ok, err := l.Allow(t.Context(), purpose, addr)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if ok {
			allowed++
		}
	}
	return allowed
}

func TestReplicasShareOneBudget(t *testing.T) {
	client, prefix := testRedis(t)
	rates := map[string]redislimit.Rate{"signin": {Every: time.Hour, Burst: 10}}
	a := redislimit.New(client, prefix, rates)
	b := redislimit.New(client, prefix, rates)
	if got := allowN(t, a, "signin", "192.0.2.1", 6); got != 6 {
		t.Fatalf("first replica allowed %d of 6", got)
	}
	if got := allowN(t, b, "signin", "192.0.2.1", 6); got != 4 {
		t.Fatalf("second replica allowed %d of 6, want the 4 left of the shared 10", got)
	}
	if got := allowN(t, a, "signin", "192.0.2.2", 1); got != 1 {
		t.Fatal("another address was limited too")
	}
}

func TestBucketsAreSeparatePerPurpose(t *testing.T) {
	client, prefix := testRedis(t)
	l := redislimit.New(client, prefix, map[string]redislimit.Rate{
		"signin": {Every: time.Hour, Burst: 2},
		"join":   {Every: time.Hour, Burst: 3},
	})
	if got := allowN(t, l, "join", "192.0.2.1", 5); got != 3 {
		t.Fatalf("join allowed %d of 5, want 3", got)
	}
	if got := allowN(t, l, "signin", "192.0.2.1", 5); got != 2 {
		t.Fatalf("sign-in allowed %d of 5 after joins spent theirs, want 2", got)
	}
	if _, err := l.Allow(t.Context(), "reset", "192.0.2.1"); err == nil {
		t.Fatal("a purpose without a rate was decided")
	}
}

func TestBucketRefillsAndExpires(t *testing.T) {
	client, prefix := testRedis(t)
	l := redislimit.New(client, prefix, map[string]redislimit.Rate{"code": {Every: 200 * time.Millisecond, Burst: 2}})
	if got := allowN(t, l, "code", "192.0.2.1", 3); got != 2 {
		t.Fatalf("allowed %d of 3, want the burst of 2", got)
	}
	ttl, err := client.PTTL(t.Context(), l.Key("code", "192.0.2.1")).Result()
	if err != nil || ttl <= 0 || ttl > 400*time.Millisecond {
		t.Fatalf("bucket TTL %v (%v), want up to the refill of the whole burst", ttl, err)
	}
	eventually.True(t, 5*time.Second, "a request refilled", func() bool {
		ok, err := l.Allow(t.Context(), "code", "192.0.2.1")
		return err == nil && ok
	})
	eventually.True(t, 5*time.Second, "the full bucket's key expired", func() bool {
		return client.Exists(t.Context(), l.Key("code", "192.0.2.1")).Val() == 0
	})
}

func TestKeysCarryNoAddress(t *testing.T) {
	client, prefix := testRedis(t)
	l := redislimit.New(client, prefix, map[string]redislimit.Rate{"join": {Every: time.Minute, Burst: 1}})
	allowN(t, l, "join", "2001:db8::17", 1)
	keys, err := client.Keys(t.Context(), prefix+"*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v (%v)", keys, err)
	}
	if strings.Contains(keys[0], "2001") || !strings.HasPrefix(keys[0], prefix+"join:") {
		t.Fatalf("key %q", keys[0])
	}
}

func TestUnreachableRedisIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	opt, err := redislimit.Options("redis://"+addr+"/0", "")
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	l := redislimit.New(client, "x:", map[string]redislimit.Rate{"signin": {Every: time.Minute, Burst: 10}})
	if ok, err := l.Allow(t.Context(), "signin", "192.0.2.1"); err == nil || ok {
		t.Fatalf("Allow = %v, %v; want an error", ok, err)
	}
}

func TestOptionsTakeThePasswordFromTheURLFirst(t *testing.T) {
	tests := []struct{ url, env, want string }{
		{"redis://:secret@127.0.0.1:6379/0", "other", "secret"},
		{"redis://127.0.0.1:6379/0", "fromenv", "fromenv"},
		{"redis://127.0.0.1:6379/0", "", ""},
	}
	for _, tt := range tests {
		opt, err := redislimit.Options(tt.url, tt.env)
		if err != nil || opt.Password != tt.want {
			t.Errorf("Options(%q) password %q (%v), want %q", tt.url, opt.Password, err, tt.want)
		}
	}
	if _, err := redislimit.Options("http://:hunter2@x", ""); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL error %v", err)
	}
}

// BenchmarkAllow measures one decision against the test Redis: a round trip
// and the script, on distinct addresses so each creates its key.
func BenchmarkAllow(b *testing.B) {
	target := os.Getenv("OPENCONSULT_TEST_REDIS")
	if target == "" {
		target = "127.0.0.1:6379"
	}
	if !strings.Contains(target, "://") {
		target = "redis://" + target
	}
	opt, err := redislimit.Options(target, "")
	if err != nil {
		b.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	if err := client.Ping(b.Context()).Err(); err != nil {
		b.Skipf("no Redis answers at %s: %v", opt.Addr, err)
	}
	prefix := "openconsult-bench:"
	defer func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		for i := 0; i < len(keys); i += 1000 {
			client.Del(context.Background(), keys[i:min(i+1000, len(keys))]...)
		}
	}()
	l := redislimit.New(client, prefix, map[string]redislimit.Rate{"join": {Every: time.Second, Burst: 30}})
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if _, err := l.Allow(b.Context(), "join", "198.51.100."+strconv.Itoa(i%256)+":"+strconv.Itoa(i/256)); err != nil {
			b.Fatal(err)
		}
	}
}
