package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/site"
	"github.com/openconsult/openconsult/site/redislimit"
)

// redisKeyPrefix starts every rate-limit key the signal servers keep.
const redisKeyPrefix = "openconsult:limit:"

// sharedLimiter connects the rate limits to -redis, or returns nil when it
// is unset. An unreachable Redis is reported but not fatal: each request
// then falls back to this server's own buckets (see site.Limiter).
func sharedLimiter(s *settings, log *slog.Logger) (site.Limiter, func() error, error) {
	if s.redis == "" {
		return nil, nil, nil
	}
	opt, err := redislimit.Options(s.redis, s.getenv("SIGNAL_REDIS_PASSWORD"))
	if err != nil {
		return nil, nil, fmt.Errorf("-redis: %w", err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		log.Warn("redis for the rate limits unreachable; each server limits on its own until it answers", "addr", opt.Addr, "err", err)
	}
	rates := map[string]redislimit.Rate{}
	for purpose, r := range site.Rates() {
		rates[purpose] = redislimit.Rate{Every: r.Every, Burst: r.Burst}
	}
	return redislimit.New(client, redisKeyPrefix, rates), client.Close, nil
}
