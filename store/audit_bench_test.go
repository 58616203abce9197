package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// BenchmarkAuditAppendPostgres appends audit entries from two connection
// pools on one PostgreSQL schema, each with its own audit.Log, as two
// signal replicas do, with 2 to 64 appenders in all. It reports appends
// per second and the p50 and p99 latency of one Append, and checks that
// the entries form one log.
func BenchmarkAuditAppendPostgres(b *testing.B) {
	for _, appenders := range []int{2, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			dsn := storetest.NewPostgresSchema(b)
			ctx := context.Background()
			var pools []*store.DB
			for range 2 {
				db := storetest.OpenPostgresDSN(b, dsn)
				b.Cleanup(func() { db.Close() })
				pools = append(pools, db)
			}
			if _, err := pools[0].Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			benchAppends(b, pools, appenders)
		})
	}
}

// benchAppends runs b.N appends spread over appenders goroutines that take
// turns over the pools, and reports their rate and latency.
func benchAppends(b *testing.B, pools []*store.DB, appenders int) {
	ctx := context.Background()
	skey, _, err := audit.GenerateSigningKey("consult.example/audit")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := audit.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	logs := make([]*audit.Log, len(pools))
	for i, db := range pools {
		logs[i] = audit.New(db, signer, nil)
	}
	lat := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range appenders {
		n := b.N / appenders
		if w < b.N%appenders {
			n++
		}
		wg.Go(func() {
			for i := range n {
				t0 := time.Now()
				// A room's own deadline for its writes.
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := logs[w%len(logs)].Append(actx, audit.Entry{Type: audit.TypeSessionRequest, Outcome: audit.Success,
					Requester: fmt.Sprintf("g_%d_%d", w, i), Room: "c_1", Message: "asked to join"})
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
	if _, err := logs[1].Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	rep, err := audit.Verify(ctx, pools[0], signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != uint64(len(all)) {
		b.Fatalf("the appends do not form one log: %+v, %v", rep, err)
	}
}
