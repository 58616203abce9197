package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunSAMLAssertions runs the suite of the SAML assertion ledger.
func RunSAMLAssertions(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"AssertionIsAcceptedOnceUntilItExpires", samlOnce},
		{"ConcurrentConsumersLetOneWin", samlConcurrent},
	})
}

var samlTime = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func consume(t *testing.T, db *store.DB, provider, id string, expires, now time.Time) bool {
	t.Helper()
	fresh, err := db.ConsumeSAMLAssertion(context.Background(), provider, id, expires, now)
	if err != nil {
		t.Fatal(err)
	}
	return fresh
}

func samlOnce(t *testing.T, db *store.DB) {
	exp := samlTime.Add(5 * time.Minute)
	if !consume(t, db, "adfs", "id-1", exp, samlTime) {
		t.Fatal("a new assertion is a replay")
	}
	if consume(t, db, "adfs", "id-1", exp, samlTime.Add(time.Minute)) {
		t.Fatal("the same assertion was accepted twice")
	}
	// Another provider's assertion of the same id is another assertion.
	if !consume(t, db, "okta", "id-1", exp, samlTime) {
		t.Fatal("ids are not per provider")
	}
	// Once expired, the record may go (the assertion's own validity
	// refuses it by then); a later assertion is unaffected.
	if !consume(t, db, "adfs", "id-2", exp.Add(time.Hour), exp.Add(time.Second)) {
		t.Fatal("a later assertion is a replay")
	}
	if !consume(t, db, "adfs", "id-1", exp.Add(time.Hour), exp.Add(time.Second)) {
		t.Fatal("the expired record was not dropped")
	}
}

func samlConcurrent(t *testing.T, db *store.DB) {
	const n = 8
	var wg sync.WaitGroup
	results := make(chan bool, n)
	for range n {
		wg.Go(func() {
			fresh, err := db.ConsumeSAMLAssertion(context.Background(), "adfs", "id-race", samlTime.Add(time.Minute), samlTime)
			if err != nil {
				t.Error(err)
			}
			results <- fresh
		})
	}
	wg.Wait()
	close(results)
	accepted := 0
	for fresh := range results {
		if fresh {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d servers accepted the same assertion", accepted)
	}
}
