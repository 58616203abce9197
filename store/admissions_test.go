package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// A stored admission holds for a member seen within the bound, and not for
// one whose admission was last dated longer ago (its row aged in the time
// column); storing it again, as the owner does while the member stays
// connected, dates it anew, with or without a lease, one member at a time
// or a room's members in one statement.
func TestStoredAdmissionsLapseAfterAnAbsence(t *testing.T) {
	for name, open := range map[string]func(*testing.T) *store.DB{"sqlite": openSQLite, "postgres": storetest.OpenPostgres} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			if err := db.CreateUser(ctx, store.User{ID: "u_1", Username: "u_1", Role: "clinician", PasswordHash: "!", CreatedAt: at}, []byte("activation"), at.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateConsult(ctx, store.Consult{ID: "c_1", OwnerID: "u_1", CreatedAt: at},
				store.ConsultLink{ID: "l_1", ConsultID: "c_1", TokenHash: []byte("hash"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.AcquireLease(ctx, "c_1", "a", time.Minute); err != nil {
				t.Fatal(err)
			}
			const bound = 2 * time.Minute
			admitted := func(member string) bool {
				t.Helper()
				ok, err := db.MemberAdmitted(ctx, "c_1", member, bound)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			age := func() {
				t.Helper()
				if err := store.ExecForTest(ctx, db, `UPDATE consult_admissions SET admitted_at = admitted_at - 130000`); err != nil {
					t.Fatal(err)
				}
			}
			// One member stored alone, as when it is admitted, and a room's
			// connected members dated anew together, in one statement
			// each: single server (g_s*) and replica (g_r*).
			single := []string{"g_s1", "g_s2", "g_s3", "g_s4", "g_s5"}
			replica := []string{"g_r1", "g_r2", "g_r3", "g_r4", "g_r5"}
			store1 := func() {
				t.Helper()
				if err := db.RememberAdmission(ctx, "c_1", single[0]); err != nil {
					t.Fatal(err)
				}
				if err := db.AdmitMember(ctx, "c_1", replica[0], "a", 1); err != nil {
					t.Fatal(err)
				}
			}
			storeAll := func() {
				t.Helper()
				if err := db.RememberAdmissions(ctx, "c_1", single); err != nil {
					t.Fatal(err)
				}
				if err := db.AdmitMembers(ctx, "c_1", replica, "a", 1); err != nil {
					t.Fatal(err)
				}
			}
			all := append(slices.Clone(single), replica...)
			heldBy := func(members []string) []string {
				t.Helper()
				var held []string
				for _, m := range members {
					if admitted(m) {
						held = append(held, m)
					}
				}
				return held
			}
			store1()
			if got, want := heldBy(all), []string{single[0], replica[0]}; !slices.Equal(got, want) {
				t.Fatalf("admissions held after storing one of each: %v, want %v", got, want)
			}
			storeAll()
			if got := heldBy(all); !slices.Equal(got, all) {
				t.Fatalf("admissions held after storing them all: %v, want %v", got, all)
			}
			age()
			if got := heldBy(all); len(got) != 0 {
				t.Fatalf("admissions last dated 2m10s ago hold with a 2m bound: %v", got)
			}
			store1()
			if got, want := heldBy(all), []string{single[0], replica[0]}; !slices.Equal(got, want) {
				t.Fatalf("admissions held after one of each was stored again: %v, want %v", got, want)
			}
			age()
			storeAll()
			if got := heldBy(all); !slices.Equal(got, all) {
				t.Fatalf("admissions stored again together are not all dated anew: held %v", got)
			}
		})
	}
}
