package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunRetention runs the document retention suite.
func RunRetention(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"ExpiresOldDocumentsOfConsultsNotHeld", retentionSelects},
		{"SweptDocumentLeavesATombstone", retentionTombstone},
		{"LegalHoldReportsChangeAndUnknownConsult", retentionLegalHold},
	})
}

// heldConsult stores a second consult of u_doc, under legal hold.
func heldConsult(t *testing.T, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	c := store.Consult{ID: "c_held", OwnerID: "u_doc", CreatedAt: docTime}
	l := store.ConsultLink{ID: "l_held", ConsultID: c.ID, TokenHash: []byte("hash held"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: docTime, ExpiresAt: docTime.Add(time.Hour)}
	if err := db.CreateConsult(ctx, c, l); err != nil {
		t.Fatal(err)
	}
	if changed, err := db.SetLegalHold(ctx, c.ID, true); !changed || err != nil {
		t.Fatalf("SetLegalHold = %v, %v", changed, err)
	}
	return c.ID
}

func expireIDs(t *testing.T, db *store.DB, cutoff time.Time) []string {
	t.Helper()
	docs, err := db.DocumentsToExpire(context.Background(), cutoff, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	return ids
}

func retentionSelects(t *testing.T, db *store.DB) {
	ctx := context.Background()
	open := newConsult(t, db)
	held := heldConsult(t, db)
	for i, doc := range []struct {
		consult string
		age     time.Duration
	}{{open, 48 * time.Hour}, {open, time.Hour}, {held, 48 * time.Hour}} {
		d, c := document(doc.consult, i, 5)
		d.CreatedAt = docTime.Add(-doc.age)
		c.CreatedAt = d.CreatedAt
		if err := share(ctx, db, d, c, store.DocumentQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := docTime.Add(-24 * time.Hour)
	if got := expireIDs(t, db, cutoff); len(got) != 1 || got[0] != "d_0" {
		t.Fatalf("to expire = %v, want [d_0]: the recent one and the held one stay", got)
	}
	// A key destroyed before the hold was set still finishes its deletion.
	if err := db.DestroyDocumentKey(ctx, "d_2", docTime); err != nil {
		t.Fatal(err)
	}
	if got := expireIDs(t, db, cutoff); len(got) != 2 || got[0] != "d_0" || got[1] != "d_2" {
		t.Fatalf("to expire = %v, want [d_0 d_2]", got)
	}
	if changed, err := db.SetLegalHold(ctx, held, false); !changed || err != nil {
		t.Fatalf("lift hold = %v, %v", changed, err)
	}
}

func retentionTombstone(t *testing.T, db *store.DB) {
	ctx := context.Background()
	consultID := newConsult(t, db)
	d, c := document(consultID, 0, 5)
	if err := share(ctx, db, d, c, store.DocumentQuota{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.MarkDocumentDeleted(ctx, d.ID, docTime); ok || err != nil {
		t.Fatalf("deleted before its key was destroyed = %v, %v; want false", ok, err)
	}
	if err := db.DestroyDocumentKey(ctx, d.ID, docTime); err != nil {
		t.Fatal(err)
	}
	got, err := db.DocumentByID(ctx, consultID, d.ID)
	if err != nil || got.KeyEnc != nil || got.ExpiredAt.IsZero() || !got.DeletedAt.IsZero() || got.Object == "" {
		t.Fatalf("after key destroyed = %+v, %v", got, err)
	}
	if todo, _ := db.DocumentsToMove(ctx, 10); len(todo) != 0 {
		t.Fatalf("an expired document is offered for moving: %+v", todo)
	}
	if ok, err := db.MarkDocumentDeleted(ctx, d.ID, docTime.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("MarkDocumentDeleted = %v, %v", ok, err)
	}
	if ok, err := db.MarkDocumentDeleted(ctx, d.ID, docTime.Add(2*time.Minute)); ok || err != nil {
		t.Fatalf("second MarkDocumentDeleted = %v, %v; want false", ok, err)
	}
	got, err = db.DocumentByID(ctx, consultID, d.ID)
	if err != nil || got.Object != "" || got.KeyEnc != nil || !got.DeletedAt.Equal(docTime.Add(time.Minute)) || got.Size != 5 {
		t.Fatalf("tombstone = %+v, %v", got, err)
	}
	rows, err := db.ChatRows(ctx, consultID)
	if err != nil || len(rows) != 1 || rows[0].DocumentID != d.ID {
		t.Fatalf("chat rows = %+v, %v; the chat still names the document", rows, err)
	}
	if got := expireIDs(t, db, docTime.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("tombstone offered again: %v", got)
	}
}

func retentionLegalHold(t *testing.T, db *store.DB) {
	ctx := context.Background()
	consultID := newConsult(t, db)
	for _, step := range []struct {
		hold, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}} {
		if changed, err := db.SetLegalHold(ctx, consultID, step.hold); changed != step.changed || err != nil {
			t.Fatalf("SetLegalHold(%v) = %v, %v; want %v", step.hold, changed, err, step.changed)
		}
	}
	if _, err := db.SetLegalHold(ctx, "c_missing", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown consult: %v, want ErrNotFound", err)
	}
}
