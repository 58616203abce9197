package sfulink_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/sfulink"
)

// A signal process reaches its media nodes through a Pool, which is the
// media.Node the signaling package is given.
func ExampleNewPool() {
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	tlsCfg, err := sfulink.ClientTLS("/etc/openconsult/signal-link.pem", "/etc/openconsult/signal-link-key.pem", "/etc/openconsult/link-ca.pem")
	if err != nil {
		log.Error("link certificates", "err", err)
		return
	}
	pool, err := sfulink.NewPool(ctx, sfulink.PoolConfig{
		Nodes: []string{"wss://sfu-1.example.internal:7443/", "wss://sfu-2.example.internal:7443/"},
		TLS:   tlsCfg,
		Log:   log,
	})
	if err != nil {
		log.Error("media nodes", "err", err)
		return
	}
	defer pool.Close()
	var node media.Node = pool
	_ = node
}

// An sfu process serves its node on the link listener.
func ExampleServerTLS() {
	tlsCfg, err := sfulink.ServerTLS("/etc/openconsult/sfu/link.pem", "/etc/openconsult/sfu/link-key.pem", "/etc/openconsult/sfu/link-ca.pem")
	if err != nil {
		return
	}
	node, err := media.New(media.Config{Log: slog.Default(), MaxParticipants: 200})
	if err != nil {
		return
	}
	link := sfulink.NewServer(sfulink.ServerConfig{Node: node})
	_, _ = tlsCfg, link // serve link on a listener with tlsCfg (see cmd/sfu)
}
