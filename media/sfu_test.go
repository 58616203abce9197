package media_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

func TestInProcessNode(t *testing.T) {
	nodetest.Run(t, func(t *testing.T, maxParticipants int) media.Node {
		sfu, err := media.New(media.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Settings: nodetest.LoopbackSettings(), MaxParticipants: maxParticipants})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sfu.Close)
		return sfu
	})
}
