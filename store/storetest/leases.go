package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunLeases runs the suite of consult leases and stored admissions.
func RunLeases(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"OneReplicaOwnsALiveConsult", leaseOneOwner},
		{"ConcurrentAcquisitionsLetOneWin", leaseConcurrent},
		{"ExpiredLeaseIsTakenOverWithANewEpoch", leaseTakeover},
		{"ReleasedLeaseKeepsItsEpoch", leaseRelease},
		{"StaleOwnerCannotWriteAdmissions", leaseFencesAdmissions},
		{"WaitingCountsOfLiveLeasesOnly", leaseWaiting},
		{"SingleServerAdmissionsNeedNoLease", admissionsWithoutLease},
	})
}

func acquire(t *testing.T, db *store.DB, consultID, replica string, ttl time.Duration) store.Lease {
	t.Helper()
	l, err := db.AcquireLease(context.Background(), consultID, replica, ttl)
	if err != nil {
		t.Fatalf("AcquireLease(%s) = %v", replica, err)
	}
	return l
}

func leaseOneOwner(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	if l, err := db.LeaseOf(ctx, id); err != nil || l.Live {
		t.Fatalf("lease before anyone = %+v, %v", l, err)
	}
	if l := acquire(t, db, id, "a", time.Minute); l.Owner != "a" || l.Epoch != 1 || !l.Live {
		t.Fatalf("first acquisition = %+v", l)
	}
	if l := acquire(t, db, id, "b", time.Minute); l.Owner != "a" || l.Epoch != 1 {
		t.Fatalf("b's acquisition of a live lease = %+v, want a's", l)
	}
	held, err := db.RenewLeases(ctx, "a", time.Minute)
	if err != nil || len(held) != 1 || held[id] != 1 {
		t.Fatalf("RenewLeases(a) = %v, %v", held, err)
	}
	if held, err := db.RenewLeases(ctx, "b", time.Minute); err != nil || len(held) != 0 {
		t.Fatalf("RenewLeases(b) = %v, %v", held, err)
	}
}

func leaseConcurrent(t *testing.T, db *store.DB) {
	id := newConsult(t, db)
	const n = 8
	owners := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l, err := db.AcquireLease(context.Background(), id, string(rune('a'+i)), time.Minute)
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
			}
			owners[i] = l.Owner
		})
	}
	wg.Wait()
	for _, o := range owners {
		if o != owners[0] {
			t.Fatalf("replicas disagree on the owner: %v", owners)
		}
	}
}

func leaseTakeover(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	acquire(t, db, id, "a", time.Millisecond)
	var l store.Lease
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		l, err = db.AcquireLease(ctx, id, "b", time.Minute)
		// ErrConflict: the lease expired between the attempt and the
		// look at its owner; the caller asks again.
		if err != nil && !errors.Is(err, store.ErrConflict) {
			t.Fatal(err)
		}
		if l.Owner == "b" || time.Now().After(deadline) {
			break
		}
	}
	if l.Owner != "b" || l.Epoch != 2 {
		t.Fatalf("takeover of an expired lease = %+v, want b at epoch 2", l)
	}
	if held, err := db.RenewLeases(ctx, "a", time.Minute); err != nil || len(held) != 0 {
		t.Fatalf("the old owner renewed %v, %v", held, err)
	}
}

func leaseRelease(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	acquire(t, db, id, "a", time.Minute)
	if err := db.ReleaseLease(ctx, id, "a", 1); err != nil {
		t.Fatal(err)
	}
	if held, err := db.RenewLeases(ctx, "a", time.Minute); err != nil || len(held) != 0 {
		t.Fatalf("a released lease was renewed: %v, %v", held, err)
	}
	if l := acquire(t, db, id, "b", time.Minute); l.Owner != "b" || l.Epoch != 2 {
		t.Fatalf("acquisition after release = %+v, want b at epoch 2", l)
	}
}

func leaseFencesAdmissions(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	acquire(t, db, id, "a", time.Minute)
	if err := db.AdmitMember(ctx, id, "g_1", "a", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.AdmitMember(ctx, id, "g_1", "a", 1); err != nil {
		t.Fatalf("admitting twice: %v", err)
	}
	if ok, err := db.MemberAdmitted(ctx, id, "g_1", time.Hour); !ok || err != nil {
		t.Fatalf("MemberAdmitted = %v, %v", ok, err)
	}
	if err := db.ReleaseLease(ctx, id, "a", 1); err != nil {
		t.Fatal(err)
	}
	acquire(t, db, id, "b", time.Minute)
	for name, err := range map[string]error{
		"admit":      db.AdmitMember(ctx, id, "g_2", "a", 1),
		"admit many": db.AdmitMembers(ctx, id, []string{"g_2", "g_3"}, "a", 1),
		"forget":     db.ForgetMember(ctx, id, "g_1", "a", 1),
	} {
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s by the stale owner = %v, want ErrLeaseLost", name, err)
		}
	}
	if ok, _ := db.MemberAdmitted(ctx, id, "g_1", time.Hour); !ok {
		t.Fatal("the stale owner's forget took effect")
	}
	for _, m := range []string{"g_2", "g_3"} {
		if ok, _ := db.MemberAdmitted(ctx, id, m, time.Hour); ok {
			t.Fatalf("the stale owner's admission of %s took effect", m)
		}
	}
	// The owner's: a member twice in one statement is harmless (PostgreSQL
	// refuses an upsert that touches a row twice), none is a no-op.
	if err := db.AdmitMembers(ctx, id, []string{"g_3", "g_1", "g_3"}, "b", 2); err != nil {
		t.Fatalf("AdmitMembers with a repeat = %v", err)
	}
	if err := db.AdmitMembers(ctx, id, nil, "b", 2); err != nil {
		t.Fatalf("AdmitMembers of nobody = %v", err)
	}
	if ok, _ := db.MemberAdmitted(ctx, id, "g_3", time.Hour); !ok {
		t.Fatal("the owner's admission of g_3 did not take effect")
	}
	if err := db.ForgetMember(ctx, id, "g_1", "b", 2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.MemberAdmitted(ctx, id, "g_1", time.Hour); ok {
		t.Fatal("forgotten admission still stored")
	}
}

func leaseWaiting(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	acquire(t, db, id, "a", time.Minute)
	if err := db.SetLeaseWaiting(ctx, id, "a", 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := db.SetLeaseWaiting(ctx, id, "b", 1, 5); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("SetLeaseWaiting by a non-owner = %v", err)
	}
	if w, err := db.LeaseWaiting(ctx); err != nil || w[id] != 2 || len(w) != 1 {
		t.Fatalf("LeaseWaiting = %v, %v", w, err)
	}
	if err := db.ReleaseLease(ctx, id, "a", 1); err != nil {
		t.Fatal(err)
	}
	if w, err := db.LeaseWaiting(ctx); err != nil || len(w) != 0 {
		t.Fatalf("LeaseWaiting after release = %v, %v", w, err)
	}
}

func admissionsWithoutLease(t *testing.T, db *store.DB) {
	ctx := context.Background()
	id := newConsult(t, db)
	for range 2 { // a second admission of the same member is harmless
		if err := db.RememberAdmission(ctx, id, "g_1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RememberAdmissions(ctx, id, []string{"g_3", "g_1", "g_3"}); err != nil {
		t.Fatalf("RememberAdmissions with a repeat = %v", err)
	}
	if err := db.RememberAdmissions(ctx, id, nil); err != nil {
		t.Fatalf("RememberAdmissions of nobody = %v", err)
	}
	if ok, err := db.MemberAdmitted(ctx, id, "g_3", time.Hour); !ok || err != nil {
		t.Fatalf("MemberAdmitted after RememberAdmissions = %v, %v", ok, err)
	}
	if ok, err := db.MemberAdmitted(ctx, id, "g_1", time.Hour); !ok || err != nil {
		t.Fatalf("MemberAdmitted after RememberAdmission = %v, %v", ok, err)
	}
	if ok, _ := db.MemberAdmitted(ctx, id, "g_2", time.Hour); ok {
		t.Fatal("a member never admitted is admitted")
	}
	if err := db.ForgetAdmission(ctx, id, "g_1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.MemberAdmitted(ctx, id, "g_1", time.Hour); ok || err != nil {
		t.Fatalf("MemberAdmitted after ForgetAdmission = %v, %v", ok, err)
	}
}
