package redisbus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/site/redislimit"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// Messages to a replica arrive in the order they were published, those to
// every replica reach every replica, and nothing reaches another replica.
func TestMessagesArriveInOrderAtTheirReplica(t *testing.T) {
	_, client, prefix := redistest.Open(t)
	bus := newBus(t, client, Config{Prefix: prefix, Replica: "c"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for _, r := range []string{"a", "b"} {
		rb := newBus(t, client, Config{Prefix: prefix, Replica: r})
		wg.Go(func() {
			_ = rb.Receive(ctx, r, func(from string, b []byte) {
				if from != "c" {
					t.Errorf("%s received a message from %q, want c", r, from)
				}
				mu.Lock()
				defer mu.Unlock()
				if string(b) == "hello" {
					got[r+" hello"] = append(got[r+" hello"], "hello")
					return
				}
				got[r] = append(got[r], string(b))
			}, func() { t.Errorf("%s resubscribed", r) })
		})
	}
	defer wg.Wait()
	defer cancel()
	// Subscriptions start asynchronously: publish until both hear.
	eventually.True(t, 10*time.Second, "both replicas subscribed", func() bool {
		_ = bus.Publish(ctx, []string{""}, [][]byte{[]byte("hello")})
		mu.Lock()
		defer mu.Unlock()
		return len(got["a hello"]) > 0 && len(got["b hello"]) > 0
	})
	var want []string
	for batch := range 10 {
		to, data := []string{}, [][]byte{}
		for i := range 10 {
			msg := fmt.Sprintf("m%03d", batch*10+i)
			to, data = append(to, "a"), append(data, []byte(msg))
			want = append(want, msg)
		}
		if err := bus.Publish(ctx, to, data); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 10*time.Second, "every message at a", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["a"]) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got["a"]) != fmt.Sprint(want) {
		t.Fatalf("a received %v", got["a"])
	}
	if len(got["b"]) != 0 {
		t.Fatalf("b received a's messages: %v", got["b"])
	}
}

func TestHeartbeatsExpireAndAreWithdrawn(t *testing.T) {
	_, client, prefix := redistest.Open(t)
	bus := newBus(t, client, Config{Prefix: prefix, Replica: "a"})
	ctx := context.Background()
	if err := bus.Heartbeat(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := bus.Heartbeat(ctx, "b", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "b's heartbeat to expire", func() bool {
		alive, err := bus.Alive(ctx, []string{"a", "b", "c"})
		return err == nil && alive["a"] && !alive["b"] && !alive["c"]
	})
	if err := bus.Heartbeat(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if alive, err := bus.Alive(ctx, []string{"a"}); err != nil || alive["a"] {
		t.Fatalf("a withdrawn: alive %v, %v", alive, err)
	}
}

// A rediss:// URL, as docs/operations.md gives for a Redis on another
// machine, connects over TLS that checks the server's name.
func TestRedissURLUsesTLS(t *testing.T) {
	opt, err := redislimit.Options("rediss://:secret@redis.example-hospital.org:6380/2", "")
	if err != nil {
		t.Fatal(err)
	}
	if opt.TLSConfig == nil || opt.TLSConfig.ServerName != "redis.example-hospital.org" || opt.TLSConfig.InsecureSkipVerify {
		t.Fatalf("TLS config %+v", opt.TLSConfig)
	}
	if opt.Addr != "redis.example-hospital.org:6380" || opt.DB != 2 || opt.Password != "secret" {
		t.Fatalf("options %s db %d", opt.Addr, opt.DB)
	}
	if opt, err := redislimit.Options("redis://127.0.0.1:6379/0", ""); err != nil || opt.TLSConfig != nil {
		t.Fatalf("redis:// gave TLS %v, %v", opt.TLSConfig, err)
	}
}
