package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// A stored admission holds for a member seen within the bound, and not for
// one whose admission was last dated longer ago (its row aged in the time
// column); storing it again, as the owner does while the member stays
// connected, dates it anew, with or without a lease.
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
			if err := db.RememberAdmission(ctx, "c_1", "g_1"); err != nil {
				t.Fatal(err)
			}
			if err := db.AdmitMember(ctx, "c_1", "g_2", "a", 1); err != nil {
				t.Fatal(err)
			}
			if !admitted("g_1") || !admitted("g_2") {
				t.Fatal("fresh admissions do not hold")
			}
			age()
			if admitted("g_1") || admitted("g_2") {
				t.Fatal("admissions last dated 2m10s ago hold with a 2m bound")
			}
			if err := db.RememberAdmission(ctx, "c_1", "g_1"); err != nil {
				t.Fatal(err)
			}
			if err := db.AdmitMember(ctx, "c_1", "g_2", "a", 1); err != nil {
				t.Fatal(err)
			}
			if !admitted("g_1") || !admitted("g_2") {
				t.Fatal("admissions stored again are not dated anew")
			}
		})
	}
}
