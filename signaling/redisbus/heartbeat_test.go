package redisbus

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// Heartbeats written on the Redis by a raw client without the bus key (a
// made-up value, a genuine one copied to another replica's key, a genuine
// one written back after it expired) are counted and taken as absent, so
// that no forgery keeps a dead replica looking alive; genuine ones are
// read under the current key and, during a rotation, the previous one.
func TestForgedHeartbeatsAreAbsent(t *testing.T) {
	_, client, prefix := redistest.Open(t)
	ctx := context.Background()
	var offset time.Duration
	clock := func() time.Time { return time.Now().Add(offset) }
	a := newBus(t, client, Config{Prefix: prefix, Replica: "a", Now: clock})
	if err := a.Heartbeat(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	alive := func(b *Bus, replica string) bool {
		t.Helper()
		got, err := b.Alive(ctx, []string{replica})
		if err != nil {
			t.Fatal(err)
		}
		return got[replica]
	}
	if !alive(a, "a") {
		t.Fatal("a genuine heartbeat is absent")
	}
	rotated := newBus(t, client, Config{Prefix: prefix, Replica: "r", Key: newKey, PreviousKey: testKey})
	if err := rotated.Heartbeat(ctx, "r", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !alive(rotated, "a") || !alive(a, "r") {
		t.Fatal("heartbeats are not read across a rotation")
	}
	genuine, err := client.Get(ctx, a.aliveKey("a")).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, replica, value string
		before               func()
	}{
		{"made up", "dead", "1", nil},
		{"made up in the format", "dead", "hb1.99999999999999.AAAA", nil},
		{"copied to another replica", "dead", genuine, nil},
		{"written back after it expired", "a", genuine, func() { offset = time.Minute + maxSkew + time.Second }},
	} {
		if tt.before != nil {
			tt.before()
		}
		if err := client.Set(ctx, a.aliveKey(tt.replica), tt.value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		want := testutil.ToFloat64(a.refused.WithLabelValues(reasonHeartbeat)) + 1
		if alive(a, tt.replica) {
			t.Errorf("%s: a forged heartbeat keeps %s alive", tt.name, tt.replica)
		}
		if got := testutil.ToFloat64(a.refused.WithLabelValues(reasonHeartbeat)); got != want {
			t.Errorf("%s: %v forged heartbeats counted, want %v", tt.name, got, want)
		}
	}
	// A deleted heartbeat is absent, and not counted.
	offset = 0
	if err := client.Del(ctx, a.aliveKey("a")).Err(); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(a.refused.WithLabelValues(reasonHeartbeat))
	if alive(a, "a") || testutil.ToFloat64(a.refused.WithLabelValues(reasonHeartbeat)) != before {
		t.Error("a deleted heartbeat is alive or counted")
	}
}

// FuzzHeartbeat feeds arbitrary values to the heartbeat check: nothing
// panics, and nothing verifies but a value tagged with the key.
func FuzzHeartbeat(f *testing.F) {
	ks := heartbeatKeys{newHeartbeatKey(testKey)}
	now := time.Unix(1_800_000_000, 0)
	genuine := ks.value("k", now.Add(time.Minute))
	f.Add(genuine)
	f.Add("hb1.1.x.y.z")
	f.Add("1")
	f.Fuzz(func(t *testing.T, v string) {
		parts, want := strings.Split(v, "."), strings.Split(genuine, ".")
		if ks.verify("k", v, now) && (parts[1] != want[1] || !slices.Contains(parts[2:], want[2])) {
			t.Fatalf("forged heartbeat %q verified", v)
		}
	})
}
