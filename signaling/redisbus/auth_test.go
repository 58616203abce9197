package redisbus

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
)

// testKey is the bus key of the tests' replicas.
var testKey = bytes.Repeat([]byte{0x5a}, 32)

func newBus(t testing.TB, client *redis.Client, cfg Config) *Bus {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	b, err := New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receiver is a replica's subscription and what it delivered.
type receiver struct {
	mu   sync.Mutex
	got  []string
	from []string
}

func (r *receiver) deliver(from string, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got, r.from = append(r.got, string(b)), append(r.from, from)
}

func (r *receiver) has(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if g == msg {
			return true
		}
	}
	return false
}

// Messages published on the replicas' Redis by a client without the bus
// key (a raw go-redis client: no key, another key, an envelope altered or
// moved to another channel, a genuine one replayed, one too old or dated
// in the future) are refused, counted by reason, and never delivered; the
// genuine messages around them are.
func TestForgedMessagesAreRefused(t *testing.T) {
	_, client, prefix := redistest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var skew atomic.Int64 // the receiver's clock, ahead of the others
	reg := prometheus.NewRegistry()
	a := newBus(t, client, Config{Prefix: prefix, Replica: "a", Metrics: reg,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	var lag atomic.Int64 // b's clock, behind the others
	b := newBus(t, client, Config{Prefix: prefix, Replica: "b",
		Now: func() time.Time { return time.Now().Add(-time.Duration(lag.Load())) }})
	rcv := &receiver{}
	var restarts atomic.Int32
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = a.Receive(ctx, "a", rcv.deliver, func() { restarts.Add(1) }) })

	// An eavesdropper reads every envelope on a's channel.
	spy := client.Subscribe(ctx, a.channel("a"))
	defer spy.Close()
	if _, err := spy.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "a to subscribe", func() bool {
		n, err := client.PubSubNumSub(ctx, a.channel("a")).Result()
		return err == nil && n[a.channel("a")] >= 2
	})
	const secret = "chat: the patient's diagnosis"
	if err := b.Publish(ctx, []string{"a"}, [][]byte{[]byte(secret)}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the genuine message at a", func() bool { return rcv.has(secret) })
	m, err := spy.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	genuine := []byte(m.Payload)
	if bytes.Contains(genuine, []byte("diagnosis")) {
		t.Fatal("the message crossed Redis in the clear")
	}

	otherKey := make([]byte, 32)
	rand.Read(otherKey)
	intruder := newBus(t, client, Config{Prefix: prefix, Replica: "b", Key: otherKey})
	forgedChannel := newBus(t, client, Config{Prefix: prefix, Replica: "b"}).sealer.seal(a.channel(""), time.Now(), []byte("moved"))
	altered := bytes.Clone(genuine)
	altered[len(altered)-20] ^= 1
	future := newBus(t, client, Config{Prefix: prefix, Replica: "b", Now: func() time.Time { return time.Now().Add(time.Minute) }})

	for _, tt := range []struct {
		name   string
		reason string
		env    []byte
		before func()
	}{
		{"no key", reasonMalformed, []byte(`{"k":"end","f":"b","r":"c_1","q":"x"}` + "\n"), nil},
		{"another key", reasonOtherKey, intruder.sealer.seal(a.channel("a"), time.Now(), []byte("forged")), nil},
		{"altered", reasonForged, altered, nil},
		{"sealed for another channel", reasonForged, forgedChannel, nil},
		{"replayed", reasonReplayed, genuine, nil},
		{"dated in the future", reasonFuture, future.sealer.seal(a.channel("a"), time.Now().Add(time.Minute), []byte("future")), nil},
		{"replayed too late", reasonOld, genuine, func() { skew.Store(int64(maxAge + time.Second)) }},
	} {
		if tt.before != nil {
			tt.before()
		}
		want := testutil.ToFloat64(a.refused.WithLabelValues(tt.reason)) + 1
		if err := client.Publish(ctx, a.channel("a"), tt.env).Err(); err != nil {
			t.Fatal(err)
		}
		eventually.True(t, 10*time.Second, tt.name+" refused as "+tt.reason, func() bool {
			return testutil.ToFloat64(a.refused.WithLabelValues(tt.reason)) == want
		})
	}
	skew.Store(0)
	if n := restarts.Load(); n != 0 {
		t.Fatalf("forged messages restarted a's relayed tabs %d times", n)
	}
	// A genuine message that arrives too late is refused too, and a
	// restarts the tabs it relays rather than run with a gap.
	lag.Store(int64(maxAge + time.Second))
	if err := b.Publish(ctx, []string{"a"}, [][]byte{[]byte("late")}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "a to restart its relayed tabs", func() bool { return restarts.Load() == 1 })
	lag.Store(0)
	if err := b.Publish(ctx, []string{"a"}, [][]byte{[]byte("after")}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 10*time.Second, "the next genuine message at a", func() bool { return rcv.has("after") })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if strings.Join(rcv.got, "|") != secret+"|after" || strings.Join(rcv.from, "|") != "b|b" {
		t.Fatalf("a delivered %q from %q", rcv.got, rcv.from)
	}
	if n, err := testutil.GatherAndCount(reg, "signal_bus_refused_total"); err != nil || n != len(refusalReasons) {
		t.Fatalf("refusal series = %d, %v", n, err)
	}
}

// A bus needs a key of 32 bytes that is not zero, and a replica name.
func TestBusRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Replica: "a", Key: make([]byte, 32)},
		{Replica: "a", Key: testKey[:16]},
		{Replica: "", Key: testKey},
		{Replica: strings.Repeat("a", 256), Key: testKey},
	} {
		if _, err := New(nil, cfg); err == nil {
			t.Errorf("New(%d-byte name, %d-byte key) accepted", len(cfg.Replica), len(cfg.Key))
		}
	}
}

// The replay window accepts each sequence number once, in any order
// within the window, and refuses one that fell behind it.
func TestReplayWindow(t *testing.T) {
	var s stream
	for _, tt := range []struct {
		seq  uint64
		want bool
	}{
		{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false}, {3, false},
		{3 + replayWindow, true}, {3, false}, {4, true}, {4, false}, {5 + replayWindow, true},
		{4 + replayWindow, true}, {4 + replayWindow, false}, {3*replayWindow + 10, true}, {5 + replayWindow, false},
	} {
		if got := s.mark(tt.seq); got != tt.want {
			t.Fatalf("mark(%d) = %v, want %v", tt.seq, got, tt.want)
		}
	}
}

// An incarnation the receiver no longer remembers can only be replayed
// too old: forgetting it reopens no window.
func TestForgottenIncarnationStaysRefused(t *testing.T) {
	key, err := newEnvelopeKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSealer(key, "b")
	if err != nil {
		t.Fatal(err)
	}
	o := newOpener(key)
	t0 := time.Now()
	env := s.seal("ch", t0, []byte("x"))
	if _, _, err := o.open("ch", t0, env); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(maxAge + maxSkew + time.Second)
	o.open("ch", later, s.seal("ch", later, []byte("y")))
	if len(o.streams) != 1 {
		t.Fatalf("%d streams remembered", len(o.streams))
	}
	o.swept = time.Time{}
	o.sweep(later.Add(2 * (maxAge + maxSkew)))
	if len(o.streams) != 0 {
		t.Fatalf("%d streams after the sweep", len(o.streams))
	}
	if _, _, err := o.open("ch", later, env); err == nil || err.(*refusal).reason != reasonOld {
		t.Fatalf("replay after the sweep: %v", err)
	}
}

// FuzzEnvelope feeds arbitrary bytes to the envelope decoder: nothing
// panics, and nothing opens that was not sealed with the key for the
// channel.
func FuzzEnvelope(f *testing.F) {
	key, err := newEnvelopeKey(testKey)
	if err != nil {
		f.Fatal(err)
	}
	s, err := newSealer(key, "b")
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Add(s.seal("ch", now, []byte("hello")))
	f.Add(s.seal("ch", now, nil))
	f.Add([]byte{envelopeVersion})
	f.Add([]byte(`{"k":"end"}` + "\n"))
	f.Fuzz(func(t *testing.T, env []byte) {
		o := newOpener(key)
		from, msg, err := o.open("ch", now, env)
		if err == nil && (from != "b" || string(msg) != "hello" && len(msg) != 0) {
			t.Fatalf("forged envelope opened: from %q, %q", from, msg)
		}
		if err != nil {
			if _, ok := err.(*refusal); !ok {
				t.Fatalf("error %T is not a refusal", err)
			}
		}
	})
}
