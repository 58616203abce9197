package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/store"
)

// RunKeys runs the data key suite: the keyring.Storage contract, whose
// checks inside transactions are what make key rotation safe while other
// servers run.
func RunKeys(t *testing.T, open Opener) {
	run(t, open, true, []suiteCase{
		{"EmptyDatabaseHasNoDataKeys", keysEmpty},
		{"AddedKeyBecomesTheOnlyActiveOne", keysAddActive},
		{"ReusedKeyIDIsRefused", keysReusedID},
		{"KeyUnderAnotherMasterIsRefused", keysForeignMaster},
		{"RewrapReplacesEveryKeyAtOnce", keysRewrap},
		{"StaleRewrapChangesNothing", keysStaleRewrap},
		{"ConcurrentAddsOfOneIDLetOneWin", keysConcurrentSameID},
		{"ConcurrentAddsLeaveOneActiveKey", keysConcurrentActive},
		{"KeyringRotatesOverTheStore", keysKeyring},
	})
}

// dataKey is a stored-form key whose wrapped bytes name it, so a test can
// tell which write a row came from.
func dataKey(id uint32, master string, active bool) keyring.DataKey {
	return keyring.DataKey{ID: id, Wrapped: fmt.Appendf(nil, "wrapped-%d-by-%s", id, master), Master: master,
		CreatedAt: t0.Add(time.Duration(id) * time.Minute), Active: active}
}

func listKeys(t *testing.T, db *store.DB) []keyring.DataKey {
	t.Helper()
	keys, err := db.DataKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func addKeys(t *testing.T, db *store.DB, master string, ids ...uint32) {
	t.Helper()
	for _, id := range ids {
		if err := db.AddDataKey(context.Background(), dataKey(id, master, true)); err != nil {
			t.Fatalf("add data key %d: %v", id, err)
		}
	}
}

func sameKeys(a, b []keyring.DataKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Wrapped, b[i].Wrapped) || a[i].Master != b[i].Master ||
			!a[i].CreatedAt.Equal(b[i].CreatedAt) || a[i].Active != b[i].Active {
			return false
		}
	}
	return true
}

func keysEmpty(t *testing.T, db *store.DB) {
	if keys := listKeys(t, db); len(keys) != 0 {
		t.Fatalf("fresh database has %d data keys", len(keys))
	}
}

func keysAddActive(t *testing.T, db *store.DB) {
	addKeys(t, db, "aaaa", 1, 2, 3)
	want := []keyring.DataKey{dataKey(1, "aaaa", false), dataKey(2, "aaaa", false), dataKey(3, "aaaa", true)}
	if got := listKeys(t, db); !sameKeys(got, want) {
		t.Fatalf("DataKeys = %+v\nwant %+v", got, want)
	}
}

func keysReusedID(t *testing.T, db *store.DB) {
	addKeys(t, db, "aaaa", 1)
	before := listKeys(t, db)
	k := dataKey(1, "aaaa", true)
	k.Wrapped = []byte("another key under the same id")
	err := db.AddDataKey(context.Background(), k)
	if !errors.Is(err, keyring.ErrKeysChanged) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reused id = %v, want ErrKeysChanged and ErrConflict", err)
	}
	if after := listKeys(t, db); !sameKeys(before, after) {
		t.Fatalf("a refused add changed the keys: %+v", after)
	}
}

func keysForeignMaster(t *testing.T, db *store.DB) {
	addKeys(t, db, "aaaa", 1)
	before := listKeys(t, db)
	if err := db.AddDataKey(context.Background(), dataKey(2, "bbbb", true)); !errors.Is(err, keyring.ErrKeysChanged) {
		t.Fatalf("key under another master = %v, want ErrKeysChanged", err)
	}
	if after := listKeys(t, db); !sameKeys(before, after) {
		t.Fatalf("a refused add changed the keys: %+v", after)
	}
}

func keysRewrap(t *testing.T, db *store.DB) {
	addKeys(t, db, "aaaa", 1, 2)
	next := []keyring.DataKey{dataKey(1, "bbbb", false), dataKey(2, "bbbb", true)}
	if err := db.RewrapDataKeys(context.Background(), "aaaa", next); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, db); !sameKeys(got, next) {
		t.Fatalf("after re-wrap %+v\nwant %+v", got, next)
	}
}

func keysStaleRewrap(t *testing.T, db *store.DB) {
	addKeys(t, db, "aaaa", 1, 2)
	before := listKeys(t, db)
	tests := []struct {
		name      string
		oldMaster string
		keys      []keyring.DataKey
	}{
		{"a key missing (added after the read)", "aaaa", []keyring.DataKey{dataKey(1, "bbbb", false)}},
		{"an unknown key", "aaaa", []keyring.DataKey{dataKey(1, "bbbb", false), dataKey(2, "bbbb", true), dataKey(3, "bbbb", false)}},
		{"the same key twice", "aaaa", []keyring.DataKey{dataKey(1, "bbbb", false), dataKey(1, "bbbb", false)}},
		{"another old master", "cccc", []keyring.DataKey{dataKey(1, "bbbb", false), dataKey(2, "bbbb", true)}},
	}
	for _, tt := range tests {
		err := db.RewrapDataKeys(context.Background(), tt.oldMaster, tt.keys)
		if !errors.Is(err, keyring.ErrKeysChanged) {
			t.Errorf("%s: %v, want ErrKeysChanged", tt.name, err)
		}
		if after := listKeys(t, db); !sameKeys(before, after) {
			t.Fatalf("%s: a refused re-wrap changed the keys: %+v", tt.name, after)
		}
	}
}

func keysConcurrentSameID(t *testing.T, db *store.DB) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := dataKey(1, "aaaa", true)
			k.Wrapped = fmt.Appendf(nil, "candidate %d", i)
			errs[i] = db.AddDataKey(context.Background(), k)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, keyring.ErrKeysChanged):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if keys := listKeys(t, db); wins != 1 || len(keys) != 1 {
		t.Fatalf("%d adds of key 1 succeeded and %d keys are stored, want 1 and 1", wins, len(keys))
	}
}

func keysConcurrentActive(t *testing.T, db *store.DB) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = db.AddDataKey(context.Background(), dataKey(uint32(i+1), "aaaa", true)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	active := 0
	for _, k := range listKeys(t, db) {
		if k.Active {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d active data keys after concurrent adds, want 1", active)
	}
}

func keysKeyring(t *testing.T, db *store.DB) {
	ctx := context.Background()
	oldKey, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Open(ctx, db, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	first, err := k.SealString("JBSWY3DPEHPK3PXP", []byte("users.totp_secret:u_1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := k.SealString("a chat line", []byte("chat:c_1:1"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := keyring.RotateMaster(ctx, db, oldKey, newKey); err != nil || n != 2 {
		t.Fatalf("RotateMaster = %d, %v", n, err)
	}
	restarted, err := keyring.Open(ctx, db, newKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		sealed    []byte
		aad, want string
	}{{first, "users.totp_secret:u_1", "JBSWY3DPEHPK3PXP"}, {second, "chat:c_1:1", "a chat line"}} {
		if got, err := restarted.UnsealString(v.sealed, []byte(v.aad)); err != nil || got != v.want {
			t.Fatalf("after rotations: %q, %v", got, err)
		}
	}
}
