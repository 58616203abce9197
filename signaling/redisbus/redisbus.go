// Package redisbus carries the messages between signal replicas over Redis
// publish/subscribe, and their heartbeats as keys that expire.
//
// Every message is sealed (envelope.go): a client of the Redis without the
// bus key can neither read what the replicas exchange nor have a replica
// act on a message of its own, a replayed one or one moved to another
// channel. Heartbeats are authenticated as well (heartbeat.go), so that a
// forged one never keeps a dead replica looking alive. During a rotation of
// the master key a bus given the previous key too understands replicas on
// either key. Refused messages are counted and logged without their content.
//
// Publish/subscribe delivers at most once: a subscriber that loses its
// connection misses what was published meanwhile. Receive reports such a
// break, so that the replica restarts the tabs it relays rather than run
// with a gap.
package redisbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Config configures one replica's bus.
type Config struct {
	// Prefix starts every key and channel.
	Prefix string
	// Replica is the name this replica seals its messages under.
	Replica string
	// Key is the bus key, 32 bytes, the same on every replica: derive it
	// from the master key for this purpose only, never use the master key.
	Key []byte
	// PreviousKey, during a rotation of the master key, is the bus key
	// derived from the previous master key, or nil. The replica then seals
	// each message under both keys and accepts either, so that replicas
	// still on the previous key and those already on the new one
	// understand each other; its heartbeats carry a tag under each.
	PreviousKey []byte
	// Log receives the refusals (reason, channel and, when the message
	// opened, its sender; never its content). Nil discards them.
	Log *slog.Logger
	// Metrics, when set, receives the count of refused messages.
	Metrics prometheus.Registerer
	// Now is the clock the envelopes are dated and checked with (time.Now
	// when nil).
	Now func() time.Time
}

// Bus is the replicas' bus (signaling.Bus) on one Redis.
type Bus struct {
	client  *redis.Client
	prefix  string
	sealer  *sealer
	opener  *opener
	beats   heartbeatKeys
	now     func() time.Time
	log     *slog.Logger
	refused *prometheus.CounterVec

	logMu    sync.Mutex
	loggedAt time.Time
	unlogged int
}

// New returns the bus of cfg.Replica.
func New(client *redis.Client, cfg Config) (*Bus, error) {
	key, err := newEnvelopeKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	keys, beats := []envelopeKey{key}, heartbeatKeys{newHeartbeatKey(cfg.Key)}
	if cfg.PreviousKey != nil {
		prev, err := newEnvelopeKey(cfg.PreviousKey)
		if err != nil {
			return nil, fmt.Errorf("previous %w", err)
		}
		if prev.id == key.id {
			return nil, errors.New("bus: the previous key is the current one")
		}
		keys, beats = append(keys, prev), append(beats, newHeartbeatKey(cfg.PreviousKey))
	}
	s, err := newSealer(key, cfg.Replica, keys[1:]...)
	if err != nil {
		return nil, err
	}
	b := &Bus{client: client, prefix: cfg.Prefix, sealer: s, opener: newOpener(keys...), beats: beats, now: cfg.Now, log: cfg.Log,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signal_bus_refused_total",
			Help: "Messages between replicas refused, by reason: malformed, other_key, forged, too_old, future, replayed; and heartbeats refused: forged_heartbeat.",
		}, []string{"reason"})}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range refusalReasons {
		b.refused.WithLabelValues(r)
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(b.refused); err != nil {
			return nil, fmt.Errorf("bus metrics: %w", err)
		}
	}
	return b, nil
}

func (b *Bus) channel(replica string) string {
	if replica == "" {
		return b.prefix + "bus:all"
	}
	return b.prefix + "bus:" + replica
}

func (b *Bus) aliveKey(replica string) string { return b.prefix + "alive:" + replica }

// Publish seals data[i] for replica to[i] ("" for every replica) and
// sends them in order, in one pipeline on one connection.
func (b *Bus) Publish(ctx context.Context, to []string, data [][]byte) error {
	pipe := b.client.Pipeline()
	now := b.now()
	for i := range data {
		ch := b.channel(to[i])
		for _, env := range b.sealer.sealTwins(ch, now, data[i]) {
			pipe.Publish(ctx, ch, env)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d messages: %w", len(data), err)
	}
	return nil
}

// Receive subscribes to the replica's channel and to the channel of every
// replica and delivers the messages that open, with the name of the
// replica that sealed them, until ctx ends.
func (b *Bus) Receive(ctx context.Context, replica string, deliver func(from string, data []byte), resubscribed func()) error {
	sub := b.client.Subscribe(ctx, b.channel(replica), b.channel(""))
	defer sub.Close()
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	subscribed := 0
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// go-redis reconnects and subscribes again on the next Receive.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				subscribed++
				// Two channels: the first two confirmations are the first
				// subscription; any later one follows a reconnection.
				if subscribed > 2 {
					resubscribed()
				}
			}
		case *redis.Message:
			from, data, err := b.opener.open(m.Channel, b.now(), []byte(m.Payload))
			if err == errTwin {
				continue
			}
			if err != nil {
				if b.refuse(m.Channel, err) {
					// A replica's message came too late to be trusted:
					// the tabs it may carry restart rather than run with
					// a gap.
					resubscribed()
				}
				continue
			}
			deliver(from, data)
		}
	}
}

// refuse counts a refused message and logs it, at most once a second with
// the number refused since. It reports whether a genuine message was lost.
func (b *Bus) refuse(channel string, err error) bool {
	var r *refusal
	if !errors.As(err, &r) {
		r = &refusal{reason: reasonMalformed}
	}
	b.refused.WithLabelValues(r.reason).Inc()
	b.logMu.Lock()
	now := time.Now()
	if now.Sub(b.loggedAt) < time.Second {
		b.unlogged++
		b.logMu.Unlock()
		return r.lost
	}
	earlier := b.unlogged
	b.loggedAt, b.unlogged = now, 0
	b.logMu.Unlock()
	args := []any{"reason", r.reason, "channel", channel, "unlogged_before", earlier}
	if r.sender != "" {
		args = append(args, "sender", r.sender)
	}
	b.log.Warn("bus message refused; check that every replica has the same master key and that only they reach Redis", args...)
	return r.lost
}

// Heartbeat says the replica lives for ttl; ttl 0 withdraws it. The value
// is authenticated (heartbeat.go).
func (b *Bus) Heartbeat(ctx context.Context, replica string, ttl time.Duration) error {
	if ttl <= 0 {
		return b.client.Del(ctx, b.aliveKey(replica)).Err()
	}
	key := b.aliveKey(replica)
	return b.client.Set(ctx, key, b.beats.value(key, b.now().Add(ttl)), ttl).Err()
}

// Alive reports which replicas have a heartbeat that has not expired. A
// heartbeat that does not verify, or that says it expired, is counted as
// forged_heartbeat and taken as absent: a forgery can make a live replica
// look dead (as deleting its key can), never a dead one look alive.
func (b *Bus) Alive(ctx context.Context, replicas []string) (map[string]bool, error) {
	keys := make([]string, len(replicas))
	for i, r := range replicas {
		keys[i] = b.aliveKey(r)
	}
	vals, err := b.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("replica heartbeats: %w", err)
	}
	out := make(map[string]bool, len(replicas))
	now := b.now()
	for i, v := range vals {
		if v == nil {
			out[replicas[i]] = false
			continue
		}
		str, _ := v.(string)
		ok := b.beats.verify(keys[i], str, now)
		if !ok {
			b.refuse(keys[i], &refusal{reason: reasonHeartbeat})
		}
		out[replicas[i]] = ok
	}
	return out, nil
}
