// Package redisbus carries the messages between signal replicas over Redis
// publish/subscribe, and their heartbeats as keys that expire.
//
// Publish/subscribe delivers at most once: a subscriber that loses its
// connection misses what was published meanwhile. Receive reports such a
// break, so that the replica restarts the tabs it relays rather than run
// with a gap.
package redisbus

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bus is the replicas' bus (signaling.Bus) on one Redis; every key and channel starts with
// the prefix.
type Bus struct {
	client *redis.Client
	prefix string
}

// New returns the bus.
func New(client *redis.Client, prefix string) *Bus {
	return &Bus{client: client, prefix: prefix}
}

func (b *Bus) channel(replica string) string {
	if replica == "" {
		return b.prefix + "bus:all"
	}
	return b.prefix + "bus:" + replica
}

func (b *Bus) aliveKey(replica string) string { return b.prefix + "alive:" + replica }

// Publish sends data[i] to replica to[i] ("" for every replica), in order,
// in one pipeline on one connection.
func (b *Bus) Publish(ctx context.Context, to []string, data [][]byte) error {
	pipe := b.client.Pipeline()
	for i := range data {
		pipe.Publish(ctx, b.channel(to[i]), data[i])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish %d messages: %w", len(data), err)
	}
	return nil
}

// Receive subscribes to the replica's channel and to the channel of every
// replica and delivers their messages until ctx ends.
func (b *Bus) Receive(ctx context.Context, replica string, deliver func([]byte), resubscribed func()) error {
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
			deliver([]byte(m.Payload))
		}
	}
}

// Heartbeat says the replica lives for ttl; ttl 0 withdraws it.
func (b *Bus) Heartbeat(ctx context.Context, replica string, ttl time.Duration) error {
	if ttl <= 0 {
		return b.client.Del(ctx, b.aliveKey(replica)).Err()
	}
	return b.client.Set(ctx, b.aliveKey(replica), "1", ttl).Err()
}

// Alive reports which replicas have a heartbeat that has not expired.
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
	for i, v := range vals {
		out[replicas[i]] = v != nil
	}
	return out, nil
}
