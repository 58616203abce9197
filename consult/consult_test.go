package consult

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

func newService(t *testing.T) (*Service, *store.DB, *time.Time) {
	t.Helper()
	return newServiceAt(t, filepath.Join(t.TempDir(), "c.db"))
}

// newServiceAt is newService with its SQLite database at path.
func newServiceAt(t *testing.T, path string) (*Service, *store.DB, *time.Time) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	for _, u := range []string{"u_doc", "u_other"} {
		if err := db.CreateUser(ctx, store.User{ID: u, Username: u, Role: "clinician", PasswordHash: "!", CreatedAt: now}, []byte(u+"-activation-hash"), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	master, _ := keyring.NewMasterKey()
	keys, err := keyring.Open(ctx, db, master)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstore.NewFS(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Store: db, Sealer: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Public: &url.URL{Scheme: "https", Host: "consult.example"}, LinkTTL: 24 * time.Hour, Now: func() time.Time { return now },
		Objects: objstore.New(objects, keys)}
	return s, db, &now
}

func token(t *testing.T, v View, i int) string {
	t.Helper()
	u := v.Links[i].URL
	if !strings.HasPrefix(u, "https://consult.example/j/") {
		t.Fatalf("link %q", u)
	}
	tok := strings.TrimPrefix(u, "https://consult.example/j/")
	if len(tok) < 43 { // 256 bits in base64url
		t.Fatalf("token of %d characters", len(tok))
	}
	return tok
}

func TestPatientLinkLifecycle(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		prepare func(s *Service, now *time.Time, v View)
		wantErr error
	}{
		{"fresh link works", func(*Service, *time.Time, View) {}, nil},
		{"expired after 24 h", func(_ *Service, now *time.Time, _ View) { *now = now.Add(24 * time.Hour) }, ErrLinkInvalid},
		{"revoked", func(s *Service, _ *time.Time, v View) { s.RevokeLink(ctx, "u_doc", v.ID, v.Links[0].ID) }, ErrLinkInvalid},
		{"consult ended", func(s *Service, _ *time.Time, v View) { s.End(ctx, "u_doc", v.ID) }, ErrLinkInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, now := newService(t)
			v, err := s.Create(ctx, "u_doc", "Follow-up, knee", false)
			if err != nil {
				t.Fatal(err)
			}
			tok := token(t, v, 0)
			tt.prepare(s, now, v)
			if err := s.CheckLink(ctx, tok); !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckLink = %v, want %v", err, tt.wantErr)
			}
			_, _, err = s.JoinAsGuest(ctx, tok, "Pat Example", "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("JoinAsGuest = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestGuestSessionIsScopedAndEndsWithTheConsult(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	sess, g, err := s.JoinAsGuest(ctx, token(t, v, 0), "  Pat Example ", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GuestSession(ctx, sess)
	if err != nil || got.ConsultID != v.ID || got.Name != "Pat Example" || got.ID != g.ID {
		t.Fatalf("GuestSession = %+v, %v", got, err)
	}
	stored, _ := db.GuestByID(ctx, g.ID)
	if strings.Contains(string(stored.NameEnc), "Pat") {
		t.Fatal("the guest's name is stored in clear")
	}
	if err := s.End(ctx, "u_doc", v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GuestSession(ctx, sess); !errors.Is(err, ErrEnded) {
		t.Fatalf("session after end: %v", err)
	}
	if err := s.End(ctx, "u_doc", v.ID); !errors.Is(err, ErrEnded) {
		t.Fatalf("second end: %v", err)
	}
}

func TestOnlyTheOwnerManagesAConsult(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	if _, err := s.View(ctx, "u_other", v.ID); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("View by another clinician: %v", err)
	}
	if err := s.End(ctx, "u_other", v.ID); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("End by another clinician: %v", err)
	}
	if err := s.AddLink(ctx, "u_other", v.ID, "interpreter"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("AddLink by another clinician: %v", err)
	}
}

func TestMoreGuestsGetTheirOwnLinks(t *testing.T) {
	ctx := context.Background()
	s, _, now := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	*now = now.Add(time.Minute)
	if err := s.AddLink(ctx, "u_doc", v.ID, "interpreter"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLink(ctx, "u_doc", v.ID, "Mrs Smith"); !errors.Is(err, ErrBadInput) {
		t.Fatalf("a name as label: %v", err)
	}
	v, _ = s.View(ctx, "u_doc", v.ID)
	if len(v.Links) != 2 || v.Links[1].Label != "interpreter" || v.Links[0].URL == v.Links[1].URL {
		t.Fatalf("links %+v", v.Links)
	}
	if err := s.RevokeLink(ctx, "u_doc", v.ID, v.Links[1].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLink(ctx, token(t, v, 0)); err != nil {
		t.Fatalf("revoking the interpreter's link broke the patient's: %v", err)
	}
}

func TestChatIsSealedAndSurvivesReload(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	for i, text := range []string{"Hello, can you hear me?", "Yes — clearly."} {
		m, err := s.AppendChat(ctx, v.ID, signaling.ChatMessage{From: "u_doc", Name: "Dr Who", Text: text})
		if err != nil || m.Seq != int64(i+1) {
			t.Fatalf("AppendChat = %+v, %v", m, err)
		}
	}
	rows, _ := db.ChatRows(ctx, v.ID)
	for _, r := range rows {
		if strings.Contains(string(r.TextEnc), "hear") || strings.Contains(string(r.NameEnc), "Who") {
			t.Fatal("chat stored in clear")
		}
	}
	h, err := s.ChatHistory(ctx, v.ID)
	if err != nil || len(h) != 2 || h[1].Text != "Yes — clearly." || h[0].Name != "Dr Who" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	// A sealed message moved to another position no longer opens.
	rows[0].Seq = 99
	if err := db.AppendChat(ctx, rows[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChatHistory(ctx, v.ID); err == nil {
		t.Fatal("a moved chat row was accepted")
	}
}

func TestGuestNames(t *testing.T) {
	for name, ok := range map[string]bool{"Pat": true, "  Zoë Ångström ": true, "": false, "   ": false, strings.Repeat("x", 81): false, "bad\x00name": false, "line\nbreak": false} {
		if _, err := CleanName(name); (err == nil) != ok {
			t.Errorf("CleanName(%q) = %v", name, err)
		}
	}
}

func TestSwappedChatColumnsDoNotOpen(t *testing.T) {
	ctx := context.Background()
	s, db, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	if _, err := s.AppendChat(ctx, v.ID, signaling.ChatMessage{From: "u_doc", Name: "Dr Who", Text: "take two a day"}); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.ChatRows(ctx, v.ID)
	swapped := rows[0]
	swapped.Seq, swapped.NameEnc, swapped.TextEnc = 2, rows[0].TextEnc, rows[0].NameEnc
	_ = db.AppendChat(ctx, swapped)
	if _, err := s.ChatHistory(ctx, v.ID); err == nil {
		t.Fatal("a message with name and text swapped opened")
	}
}
