package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunDocuments runs the shared documents' suite.
func RunDocuments(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"QuotaHoldsUnderConcurrentWriters", documentQuotaConcurrent},
		{"MoveAppliesOnceToAnUnmovedRow", documentMoveOnce},
	})
}

var docTime = time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)

// newConsult stores a clinician and a consult of theirs.
func newConsult(t *testing.T, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	if err := db.CreateUser(ctx, store.User{ID: "u_doc", Username: "u_doc", Role: "clinician", PasswordHash: "!", CreatedAt: docTime}, []byte("activation"), docTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := store.Consult{ID: "c_1", OwnerID: "u_doc", CreatedAt: docTime}
	l := store.ConsultLink{ID: "l_1", ConsultID: "c_1", TokenHash: []byte("hash"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: docTime, ExpiresAt: docTime.Add(time.Hour)}
	if err := db.CreateConsult(ctx, c, l); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func document(consultID string, i int, size int64) (store.Document, store.ChatRow) {
	id := fmt.Sprintf("d_%d", i)
	d := store.Document{ID: id, ConsultID: consultID, MemberID: "g_1", NameEnc: []byte("n"), ContentType: "application/pdf", Size: size,
		Object: "documents/o_" + id, KeyEnc: []byte("sealed key"), CreatedAt: docTime}
	c := store.ChatRow{ConsultID: consultID, Seq: int64(i + 1), MemberID: "g_1", NameEnc: []byte("n"), TextEnc: []byte("t"), CreatedAt: docTime, DocumentID: id}
	return d, c
}

// share stores d with its chat row c, numbered as the store chooses.
func share(ctx context.Context, db *store.DB, d store.Document, c store.ChatRow, q store.DocumentQuota) error {
	_, err := db.ShareDocument(ctx, d, q, func(seq int64) (store.ChatRow, error) {
		c.Seq = seq
		return c, nil
	})
	return err
}

func documentQuotaConcurrent(t *testing.T, db *store.DB) {
	ctx := context.Background()
	consultID := newConsult(t, db)
	const writers = 8
	q := store.DocumentQuota{Files: 3, Bytes: 1000}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			d, c := document(consultID, i, 100)
			errs[i] = share(ctx, db, d, c, q)
		})
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrQuota):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	files, bytes, err := db.DocumentUsage(ctx, consultID)
	if stored != 3 || files != 3 || bytes != 300 || err != nil {
		t.Fatalf("%d stored; usage %d files, %d bytes, %v; want 3 within the quota", stored, files, bytes, err)
	}
	d, c := document(consultID, 10, 701)
	if err := share(ctx, db, d, c, store.DocumentQuota{Files: 10, Bytes: 1000}); !errors.Is(err, store.ErrQuota) {
		t.Fatalf("a document past the byte quota: %v", err)
	}
}

func documentMoveOnce(t *testing.T, db *store.DB) {
	ctx := context.Background()
	consultID := newConsult(t, db)
	d, c := document(consultID, 0, 5)
	d.Object, d.KeyEnc, d.DataEnc = "", nil, []byte("sealed content")
	if err := share(ctx, db, d, c, store.DocumentQuota{}); err != nil {
		t.Fatal(err)
	}
	todo, err := db.DocumentsToMove(ctx, 10)
	if err != nil || len(todo) != 1 || string(todo[0].DataEnc) != "sealed content" {
		t.Fatalf("DocumentsToMove = %+v, %v", todo, err)
	}
	if ok, err := db.MoveDocument(ctx, d.ID, "documents/o_a", []byte("key a")); !ok || err != nil {
		t.Fatalf("first move = %v, %v", ok, err)
	}
	if ok, err := db.MoveDocument(ctx, d.ID, "documents/o_b", []byte("key b")); ok || err != nil {
		t.Fatalf("second move = %v, %v; want false", ok, err)
	}
	if todo, _ := db.DocumentsToMove(ctx, 10); len(todo) != 0 {
		t.Fatalf("still to move: %d", len(todo))
	}
	got, err := db.DocumentByID(ctx, consultID, d.ID)
	if err != nil || got.Object != "documents/o_a" || string(got.KeyEnc) != "key a" || len(got.DataEnc) != 0 {
		t.Fatalf("moved row = %+v, %v", got, err)
	}
}
