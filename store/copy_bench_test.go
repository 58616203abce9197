package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// BenchmarkCopySQLiteToPostgres copies an audit log of 20,000 entries of
// about 330 bytes from SQLite into a fresh PostgreSQL schema, including the
// read-back comparison; it reports rows and megabytes per second.
func BenchmarkCopySQLiteToPostgres(b *testing.B) {
	ctx := context.Background()
	const rows = 20000
	src, err := store.OpenSQLite(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	fill := fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		INSERT INTO audit_entries (seq, canonical, leaf_hash) SELECT i, randomblob(300), randomblob(32) FROM n`, rows)
	if err := store.ExecForTest(ctx, src, fill); err != nil {
		b.Fatal(err)
	}
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		dst := storetest.OpenPostgresDSN(b, storetest.NewPostgresSchema(b))
		if _, err := dst.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := store.Copy(ctx, src, dst, nil); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/spent.Seconds(), "rows/s")
	b.ReportMetric(float64(rows*332*b.N)/spent.Seconds()/1e6, "MB/s")
}
