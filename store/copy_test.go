package store_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// installation is a populated SQLite database as a running clinic leaves
// it: accounts with sealed fields and password history, a consult with a
// guest, chat and a document, and an audit log with checkpoints.
type installation struct {
	db        *store.DB
	master    keyring.MasterKey
	objects   objstore.Backend // where shared documents' content stays
	signer    *audit.Signer
	consultID string
	docID     string
}

func populate(t *testing.T, db *store.DB) installation {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	master, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(ctx, db, master)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.RotateDataKey(ctx); err != nil { // two data keys, one retired
		t.Fatal(err)
	}
	email, err := keys.SealString("dr.who@example-hospital.org", []byte("users.email:u_doc"))
	if err != nil {
		t.Fatal(err)
	}
	doc := store.User{ID: "u_doc", Username: "dr.who", Role: "clinician", PasswordHash: "$argon2id$v=19$first", CreatedAt: now,
		ActivatedAt: now, PasswordChangedAt: now, EmailEnc: email}
	if err := db.CreateUser(ctx, doc, []byte("activation-hash-\x00\xff"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i, h := range []string{"$argon2id$second", "$argon2id$third"} {
		if err := db.SetPassword(ctx, "u_doc", h, now.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	secret, err := keys.SealString("JBSWY3DPEHPK3PXP", []byte("users.totp_secret:u_doc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetTOTPPending(ctx, "u_doc", secret); err != nil {
		t.Fatal(err)
	}
	if err := db.EnableTOTP(ctx, "u_doc", 1000, [][]byte{[]byte("code-hash-1\x00"), []byte("code-hash-2\xff")}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordSigninFailure(ctx, "nobody", now, 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &consult.Service{Store: db, Sealer: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Public: &url.URL{Scheme: "https", Host: "consult.example"}, LinkTTL: 24 * time.Hour, Now: func() time.Time { return now },
		Objects: objstore.New(objects, keys)}
	v, err := s.Create(ctx, "u_doc", "Follow-up, knee", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.JoinAsGuest(ctx, v.Links[0].URL[strings.LastIndex(v.Links[0].URL, "/")+1:], "Zoë Ångström", ""); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Hello, can you hear me?", "Yes — clearly."} {
		if _, err := s.AppendChat(ctx, v.ID, signaling.ChatMessage{From: "u_doc", Name: "Dr Who", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.ShareDocument(ctx, v.ID, "u_doc", "Dr Who", "referral.pdf", bytes.NewReader(append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0, 0xff}, 500)...)))
	if err != nil {
		t.Fatal(err)
	}
	signer := auditSigner(t)
	log := audit.New(db, signer, func() time.Time { now = now.Add(time.Second); return now })
	for i := range 7 {
		if _, err := log.Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Success, Requester: "u_doc", Message: "password accepted"}); err != nil {
			t.Fatal(err)
		}
		if i == 2 || i == 6 {
			if _, err := log.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	return installation{db: db, master: master, objects: objects, signer: signer, consultID: v.ID, docID: m.File.ID}
}

func auditSigner(t *testing.T) *audit.Signer {
	t.Helper()
	skey, _, err := audit.GenerateSigningKey(auditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCopySQLiteToPostgresKeepsEverything(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	defer src.Close()
	inst := populate(t, src)
	dst := storetest.OpenPostgres(t)
	defer dst.Close()
	if _, err := dst.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var heard []string
	got, err := store.Copy(ctx, src, dst, func(c store.TableCopy) { heard = append(heard, c.Table) })
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, c := range got {
		rows[c.Table] = c.Rows
	}
	for table, want := range map[string]int64{"users": 1, "password_history": 3, "data_keys": 2, "consults": 1, "consult_links": 1,
		"guests": 1, "sessions": 1, "chat_messages": 3, "documents": 1, "audit_entries": 7, "audit_checkpoints": 2,
		"recovery_codes": 2, "signin_failures": 1, "user_tokens": 1} {
		if rows[table] != want {
			t.Errorf("%s: %d rows copied, want %d", table, rows[table], want)
		}
	}
	if len(heard) != len(got) || slices.Index(heard, "users") > slices.Index(heard, "consults") || slices.Index(heard, "documents") > slices.Index(heard, "chat_messages") {
		t.Errorf("tables copied in the order %v", heard)
	}

	// The audit log verifies on the target, checkpoints and all.
	rep, err := audit.Verify(ctx, dst, inst.signer.VerifierKey())
	if err != nil || !rep.OK || rep.Entries != 7 || rep.Checkpoints != 2 {
		t.Fatalf("audit on the target: %+v, %v", rep, err)
	}
	// Sealed values open on the target: same keys, same ids, same bytes.
	keys, err := keyring.Open(ctx, dst, inst.master)
	if err != nil {
		t.Fatal(err)
	}
	s := &consult.Service{Store: dst, Sealer: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Public: &url.URL{Scheme: "https", Host: "consult.example"}, LinkTTL: 24 * time.Hour, Now: func() time.Time { return time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC) },
		Objects: objstore.New(inst.objects, keys)}
	h, err := s.ChatHistory(ctx, inst.consultID)
	if err != nil || len(h) != 3 || h[1].Text != "Yes — clearly." || h[2].File == nil || h[2].File.Name != "referral.pdf" {
		t.Fatalf("chat on the target: %+v, %v", h, err)
	}
	doc, err := s.OpenDocument(ctx, inst.consultID, inst.docID)
	if err != nil {
		t.Fatalf("document on the target: %v", err)
	}
	data, err := io.ReadAll(doc.Content)
	doc.Content.Close()
	if err != nil || len(data) != 1009 {
		t.Fatalf("document on the target: %d bytes, %v", len(data), err)
	}
	v, err := s.View(ctx, "u_doc", inst.consultID)
	if err != nil || v.Title != "Follow-up, knee" {
		t.Fatalf("consult on the target: %+v, %v", v, err)
	}
	u, err := dst.UserByUsername(ctx, "dr.who")
	if err != nil {
		t.Fatal(err)
	}
	if email, err := keys.UnsealString(u.EmailEnc, []byte("users.email:u_doc")); err != nil || email != "dr.who@example-hospital.org" {
		t.Fatalf("e-mail on the target: %q, %v", email, err)
	}
	// The target numbers new rows after the copied ones, and keeps working.
	if err := dst.SetPassword(ctx, "u_doc", "$argon2id$fourth", time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("new password on the target: %v", err)
	}
	if hist, err := dst.PasswordHistory(ctx, "u_doc"); err != nil || len(hist) != 4 || hist[0] != "$argon2id$fourth" {
		t.Fatalf("password history on the target: %v, %v", hist, err)
	}
	if _, err := s.AppendChat(ctx, inst.consultID, signaling.ChatMessage{From: "u_doc", Name: "Dr Who", Text: "after the move"}); err != nil {
		t.Fatal(err)
	}

	// A second copy into the now populated target is refused.
	if _, err := store.Copy(ctx, src, dst, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a populated target = %v", err)
	}
}

func TestCopyRefusesADifferentSchemaVersion(t *testing.T) {
	ctx := context.Background()
	src, dst := openSQLite(t), openSQLite(t)
	defer src.Close()
	defer dst.Close()
	if _, err := src.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Copy(ctx, src, dst, nil); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Fatalf("copy into an unmigrated target = %v", err)
	}
}

func TestCopyFindsAMismatch(t *testing.T) {
	ctx := context.Background()
	src, dst := openSQLite(t), openSQLite(t)
	defer src.Close()
	defer dst.Close()
	populate(t, src)
	if _, err := dst.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A trigger on the target that alters what it is given stands for a
	// copy that does not arrive intact.
	if err := store.ExecForTest(ctx, dst, `CREATE TRIGGER mangle AFTER INSERT ON chat_messages BEGIN
		UPDATE chat_messages SET text_enc = x'00' WHERE consult_id = NEW.consult_id AND seq = NEW.seq; END`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Copy(ctx, src, dst, nil); err == nil || !strings.Contains(err.Error(), "chat_messages") {
		t.Fatalf("copy that altered chat rows = %v", err)
	}
}

func TestCopyMovesTablesLargerThanABatch(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	defer src.Close()
	if _, err := src.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1234 // three batches of 500 rows or fewer
	if err := store.ExecForTest(ctx, src, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234)
		INSERT INTO audit_entries (seq, canonical, leaf_hash) SELECT i, randomblob(100), randomblob(32) FROM n`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		open storetest.Opener
	}{{"sqlite", openSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(tt.name, func(t *testing.T) {
			dst := tt.open(t)
			defer dst.Close()
			if _, err := dst.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := store.Copy(ctx, src, dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(got, func(c store.TableCopy) bool { return c.Table == "audit_entries" })
			if i < 0 || got[i].Rows != n {
				t.Fatalf("copied %+v", got)
			}
			var last uint64
			if err := dst.AuditRows(ctx, 0, func(r audit.Row) error { last = r.Seq; return nil }); err != nil || last != n {
				t.Fatalf("last row on the target %d, %v", last, err)
			}
		})
	}
}
