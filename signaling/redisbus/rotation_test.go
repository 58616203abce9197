package redisbus

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// newKey is the bus key derived from the master key a rotation moves to.
var newKey = bytes.Repeat([]byte{0xa5}, 32)

// During a rolling rotation of the master key, a replica restarted with the
// new key and the previous one and a replica still on the previous key
// understand each other both ways, each message delivered once and nothing
// counted as refused; once the rotation is over, a replica on the new key
// alone understands one that still holds the previous key too.
func TestRollingRotationOfTheBusKey(t *testing.T) {
	_, client, prefix := redistest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	old := newBus(t, client, Config{Prefix: prefix, Replica: "old", Key: testKey})
	rotated := newBus(t, client, Config{Prefix: prefix, Replica: "rotated", Key: newKey, PreviousKey: testKey})
	done := newBus(t, client, Config{Prefix: prefix, Replica: "done", Key: newKey})
	rcv := map[string]*receiver{}
	for name, b := range map[string]*Bus{"old": old, "rotated": rotated, "done": done} {
		r := &receiver{}
		rcv[name] = r
		wg.Go(func() { _ = b.Receive(ctx, name, r.deliver, func() { t.Errorf("%s resubscribed", name) }) })
	}
	eventually.True(t, 10*time.Second, "every replica subscribed", func() bool {
		n, err := client.PubSubNumSub(ctx, old.channel("")).Result()
		return err == nil && n[old.channel("")] == 3
	})
	send := func(from *Bus, to, msg string) {
		t.Helper()
		if err := from.Publish(ctx, []string{to}, [][]byte{[]byte(msg)}); err != nil {
			t.Fatal(err)
		}
	}
	send(rotated, "old", "new to old")
	send(old, "rotated", "old to new")
	send(rotated, "", "new to all")
	send(done, "rotated", "done to new")
	send(rotated, "done", "new to done")
	for name, want := range map[string]string{
		"old":     "new to all|new to old",
		"rotated": "done to new|new to all|old to new",
		"done":    "new to all|new to done",
	} {
		eventually.True(t, 10*time.Second, name+" to receive "+want, func() bool {
			r := rcv[name]
			r.mu.Lock()
			defer r.mu.Unlock()
			got := slices.Clone(r.got)
			slices.Sort(got)
			return strings.Join(got, "|") == want
		})
	}
	// The twins were dropped uncounted, except by the replica that holds
	// neither key of the other's twin: the one already on the new key
	// alone, for the previous key's envelopes.
	for name, b := range map[string]*Bus{"old": old, "rotated": rotated} {
		for _, r := range refusalReasons {
			if n := testutil.ToFloat64(b.refused.WithLabelValues(r)); n != 0 {
				t.Errorf("%s refused %v messages as %s", name, n, r)
			}
		}
	}
	if n := testutil.ToFloat64(done.refused.WithLabelValues(reasonOtherKey)); n != 2 {
		t.Errorf("the replica on the new key alone counted %v envelopes under another key, want the 2 twins", n)
	}
	// Replicas with no key in common still refuse each other.
	send(old, "done", "old to done")
	eventually.True(t, 10*time.Second, "the new key alone to refuse the old one", func() bool {
		return testutil.ToFloat64(done.refused.WithLabelValues(reasonOtherKey)) == 3
	})
	rcv["done"].mu.Lock()
	defer rcv["done"].mu.Unlock()
	if rcv["done"].has0("old to done") {
		t.Error("a message under a key the replica lacks was delivered")
	}
}

func (r *receiver) has0(msg string) bool {
	for _, g := range r.got {
		if g == msg {
			return true
		}
	}
	return false
}

// A bus refuses a previous key that is not a key, or is the current one.
func TestBusRefusesBadPreviousKey(t *testing.T) {
	for _, prev := range [][]byte{make([]byte, 32), testKey[:16], testKey} {
		if _, err := New(nil, Config{Replica: "a", Key: testKey, PreviousKey: prev}); err == nil {
			t.Errorf("previous key of %d bytes accepted", len(prev))
		}
	}
}
