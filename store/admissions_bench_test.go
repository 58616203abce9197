package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// BenchmarkRedateAdmissions dates anew the admissions of one room's
// members, as a consult's owner does every 40 s while they stay connected:
// one statement per member ("each") or one for the room ("room"), on
// SQLite and PostgreSQL, with the lease checked. One op is one room.
func BenchmarkRedateAdmissions(b *testing.B) {
	opens := []struct {
		name string
		open func(testing.TB) *store.DB
	}{
		{"sqlite", func(tb testing.TB) *store.DB {
			db, err := store.OpenSQLite(context.Background(), filepath.Join(tb.TempDir(), "signal.db"))
			if err != nil {
				tb.Fatal(err)
			}
			return db
		}},
		{"postgres", func(tb testing.TB) *store.DB { return storetest.OpenPostgresDSN(tb, storetest.NewPostgresSchema(tb)) }},
	}
	for _, o := range opens {
		for _, members := range []int{2, 10} {
			for _, together := range []bool{false, true} {
				how := "each"
				if together {
					how = "room"
				}
				b.Run(fmt.Sprintf("%s/members=%d/%s", o.name, members, how), func(b *testing.B) {
					db := o.open(b)
					b.Cleanup(func() { db.Close() })
					ids := redateFixture(b, db, members)
					ctx := context.Background()
					b.ResetTimer()
					for range b.N {
						if together {
							if err := db.AdmitMembers(ctx, "c_1", ids, "a", 1); err != nil {
								b.Fatal(err)
							}
							continue
						}
						for _, id := range ids {
							if err := db.AdmitMember(ctx, "c_1", id, "a", 1); err != nil {
								b.Fatal(err)
							}
						}
					}
				})
			}
		}
	}
}

// redateFixture makes consult c_1 with a lease of replica a and the
// admissions of members members, and returns their ids.
func redateFixture(b *testing.B, db *store.DB, members int) []string {
	b.Helper()
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := db.CreateUser(ctx, store.User{ID: "u_1", Username: "u_1", Role: "clinician", PasswordHash: "!", CreatedAt: at}, []byte("activation"), at.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	if err := db.CreateConsult(ctx, store.Consult{ID: "c_1", OwnerID: "u_1", CreatedAt: at},
		store.ConsultLink{ID: "l_1", ConsultID: "c_1", TokenHash: []byte("hash"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.AcquireLease(ctx, "c_1", "a", time.Hour); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, members)
	for i := range ids {
		ids[i] = fmt.Sprintf("g_%d", i)
	}
	if err := db.AdmitMembers(ctx, "c_1", ids, "a", 1); err != nil {
		b.Fatal(err)
	}
	return ids
}
