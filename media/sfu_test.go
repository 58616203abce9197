package media_test

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// testLog discards, or with SFU_DEBUG=1 prints the SFU's debug log.
func testLog() *slog.Logger {
	if os.Getenv("SFU_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func TestInProcessNode(t *testing.T) {
	nodetest.Run(t, func(t *testing.T, c nodetest.Config) media.Node {
		cfg := media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings()}
		c.Apply(&cfg)
		sfu, err := media.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sfu.Close)
		return sfu
	})
}
