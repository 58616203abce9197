package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

func TestPasskeyCounterNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	if err := db.CreateUser(ctx, store.User{ID: "u_1", Username: "dr.a", Role: "clinician", CreatedAt: now}, []byte("tok"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	add := func(id string, count uint32) {
		t.Helper()
		if err := db.AddPasskey(ctx, store.Passkey{ID: id, UserID: "u_1", CredentialID: []byte(id), Name: id, Credential: []byte("{}"), SignCount: count, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	add("counting", 5)
	add("no-counter", 0)
	tests := []struct {
		name, id string
		count    uint32
		want     error
	}{
		{"higher counter accepted", "counting", 6, nil},
		{"same counter refused", "counting", 6, store.ErrCounterRegressed},
		{"lower counter refused", "counting", 2, store.ErrCounterRegressed},
		{"authenticator without counter accepted", "no-counter", 0, nil},
		{"counter starting later accepted", "no-counter", 1, nil},
		{"counter back to zero refused", "no-counter", 0, store.ErrCounterRegressed},
	}
	for _, tt := range tests {
		if err := db.UsePasskey(ctx, tt.id, tt.count, []byte("{}"), now); !errors.Is(err, tt.want) {
			t.Errorf("%s: UsePasskey = %v, want %v", tt.name, err, tt.want)
		}
	}
}
