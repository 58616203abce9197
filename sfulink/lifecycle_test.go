package sfulink

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
)

// TestCloseStopsEveryGoroutine: a node, a pool of clients and sessions on
// them leave no goroutine behind once closed.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		p := newPKI(t)
		cfg, err := ServerTLS(p.NodeCert, p.NodeKey, p.CA.File)
		if err != nil {
			t.Fatal(err)
		}
		n := startNodeTLS(t, cfg, 0)
		defer n.stop()
		pool, err := NewPool(context.Background(), PoolConfig{Nodes: []string{n.url, "wss://127.0.0.1:1/"}, TLS: clientTLS(t, p), Log: quietLog(), Heartbeat: testHeartbeat})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, m := range []string{"a", "b"} {
			if _, err := pool.Join(ctx, "c_1", m, newRecorder()); err != nil {
				t.Fatal(err)
			}
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			buf := make([]byte, 1<<20)
			t.Logf("%d goroutines before, %d after closing:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	})
	eventually.True(t, 10*time.Second, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
