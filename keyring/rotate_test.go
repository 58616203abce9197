package keyring_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/store"
)

func status(t *testing.T, s keyring.Storage) keyring.Status {
	t.Helper()
	st, err := keyring.ReadStatus(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestOpenCreatesOneActiveDataKey(t *testing.T) {
	db := openDB(t)
	m := newMaster(t)
	newRing(t, db, m)
	newRing(t, db, m) // a restart adds nothing
	st := status(t, db)
	if len(st.Keys) != 1 || st.Active != 1 || !st.Keys[0].Active || st.Keys[0].Master != m.Fingerprint() || st.ByMaster[m.Fingerprint()] != 1 {
		t.Fatalf("status after two opens = %+v", st)
	}
}

// barrierStorage holds the first n AddDataKey calls until all n arrived,
// so n processes starting together all try to create the first key.
type barrierStorage struct {
	*store.DB
	mu      sync.Mutex
	waiting int
	arrived sync.WaitGroup
}

func (b *barrierStorage) AddDataKey(ctx context.Context, k keyring.DataKey) error {
	b.mu.Lock()
	hold := b.waiting > 0
	if hold {
		b.waiting--
		b.arrived.Done()
	}
	b.mu.Unlock()
	if hold {
		b.arrived.Wait()
	}
	return b.DB.AddDataKey(ctx, k)
}

func TestNodesStartingTogetherShareOneDataKey(t *testing.T) {
	db := openDB(t)
	m := newMaster(t)
	rings := make([]*keyring.Keyring, 4)
	errs := make([]error, len(rings))
	s := &barrierStorage{DB: db, waiting: len(rings)}
	s.arrived.Add(len(rings))
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() { rings[i], errs[i] = keyring.Open(context.Background(), s, m) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if st := status(t, db); len(st.Keys) != 1 {
		t.Fatalf("%d data keys after a simultaneous start, want 1", len(st.Keys))
	}
	v := seal(t, rings[0], "x", "aad")
	for _, r := range rings[1:] {
		mustUnseal(t, r, v, "aad", "x")
	}
}

func TestOpenWithAnotherMasterKeyNamesBothFingerprints(t *testing.T) {
	db := openDB(t)
	right, wrong := newMaster(t), newMaster(t)
	newRing(t, db, right)
	_, err := keyring.Open(context.Background(), db, wrong)
	if err == nil || !strings.Contains(err.Error(), right.Fingerprint()) || !strings.Contains(err.Error(), wrong.Fingerprint()) {
		t.Fatalf("Open with another master key: %v", err)
	}
	if strings.Contains(err.Error(), wrong.Base64()) || strings.Contains(err.Error(), right.Base64()) {
		t.Fatal("error holds key material")
	}
}

func TestDataKeyRotationSealsNewValuesWithTheNewKey(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	m := newMaster(t)
	k := newRing(t, db, m)
	before := seal(t, k, "old value", "x")
	id, err := k.RotateDataKey(ctx)
	if err != nil || id != 2 {
		t.Fatalf("RotateDataKey = %d, %v", id, err)
	}
	after := seal(t, k, "new value", "x")
	if keyID(t, before) != 1 || keyID(t, after) != 2 {
		t.Fatalf("key ids: before %d, after %d", keyID(t, before), keyID(t, after))
	}
	mustUnseal(t, k, before, "x", "old value")
	mustUnseal(t, k, after, "x", "new value")
	restarted := newRing(t, db, m)
	mustUnseal(t, restarted, before, "x", "old value")
	if got := keyID(t, seal(t, restarted, "v", "x")); got != 2 {
		t.Fatalf("restarted server seals with key %d, want 2", got)
	}
	st := status(t, db)
	if len(st.Keys) != 2 || st.Active != 2 || st.Keys[0].Active || !st.Keys[1].Active {
		t.Fatalf("status = %+v", st)
	}
	described, err := keyring.Describe(ctx, db)
	if err != nil || len(described) != 2 || described[0].Wrapped != nil || described[1].Wrapped != nil {
		t.Fatalf("Describe = %+v, %v", described, err)
	}
}

func TestAnotherKeyringPicksUpANewDataKey(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	m := newMaster(t)
	a, b, c := newRing(t, db, m), newRing(t, db, m), newRing(t, db, m)
	if _, err := a.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	v := seal(t, a, "sealed by a", "x")
	// b meets key 2 in a value and loads it, then seals with it too.
	mustUnseal(t, b, v, "x", "sealed by a")
	if got := keyID(t, seal(t, b, "v", "x")); got != 2 {
		t.Fatalf("b seals with key %d after meeting key 2", got)
	}
	// c learns of it by Refresh, without meeting a value.
	if got := keyID(t, seal(t, c, "v", "x")); got != 1 {
		t.Fatalf("c switched keys before reading them: %d", got)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := keyID(t, seal(t, c, "v", "x")); got != 2 {
		t.Fatalf("c seals with key %d after Refresh", got)
	}
}

func TestMasterRotationKeepsEveryValueReadable(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	oldKey, newKey := newMaster(t), newMaster(t)
	running := newRing(t, db, oldKey)
	v1 := seal(t, running, "under key 1", "aad")
	if _, err := running.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	v2 := seal(t, running, "under key 2", "aad")

	n, err := keyring.RotateMaster(ctx, db, oldKey, newKey)
	if err != nil || n != 2 {
		t.Fatalf("RotateMaster = %d, %v", n, err)
	}
	if st := status(t, db); st.ByMaster[newKey.Fingerprint()] != 2 || len(st.ByMaster) != 1 {
		t.Fatalf("after rotation: %+v", st.ByMaster)
	}
	// A server that started before the rotation holds the data keys and
	// keeps reading and writing.
	mustUnseal(t, running, v1, "aad", "under key 1")
	v3 := seal(t, running, "sealed after rotation", "aad")
	// A restart needs the new key; the old one is refused, naming the new.
	if _, err := keyring.Open(ctx, db, oldKey); err == nil || !strings.Contains(err.Error(), newKey.Fingerprint()) {
		t.Fatalf("old master key after rotation: %v", err)
	}
	restarted := newRing(t, db, newKey)
	mustUnseal(t, restarted, v1, "aad", "under key 1")
	mustUnseal(t, restarted, v2, "aad", "under key 2")
	mustUnseal(t, restarted, v3, "aad", "sealed after rotation")

	tests := []struct {
		name     string
		old, new keyring.MasterKey
	}{
		{"again from the retired key", oldKey, newKey},
		{"to the same key", newKey, newKey},
		{"from a key that wraps nothing", newMaster(t), newMaster(t)},
	}
	for _, tt := range tests {
		if _, err := keyring.RotateMaster(ctx, db, tt.old, tt.new); err == nil {
			t.Errorf("%s: succeeded", tt.name)
		}
	}
	if st := status(t, db); st.ByMaster[newKey.Fingerprint()] != 2 {
		t.Fatalf("a refused rotation changed the keys: %+v", st.ByMaster)
	}
}

func TestServerWithRetiredMasterKeyExplainsKeysItCannotOpen(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	oldKey, newKey := newMaster(t), newMaster(t)
	running := newRing(t, db, oldKey)
	old := seal(t, running, "old", "aad")
	if _, err := keyring.RotateMaster(ctx, db, oldKey, newKey); err != nil {
		t.Fatal(err)
	}
	restarted := newRing(t, db, newKey)
	if _, err := restarted.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := seal(t, restarted, "new", "aad")

	_, err := running.Unseal(fresh, []byte("aad"))
	if err == nil || errors.Is(err, keyring.ErrUnseal) || !strings.Contains(err.Error(), newKey.Fingerprint()) || !strings.Contains(err.Error(), oldKey.Fingerprint()) {
		t.Fatalf("unsealing under a key wrapped by the new master: %v", err)
	}
	mustUnseal(t, running, old, "aad", "old")
	if _, err := running.RotateDataKey(ctx); err == nil || !strings.Contains(err.Error(), "this process holds") {
		t.Fatalf("data key rotation by a server with the retired master key: %v", err)
	}
	if st := status(t, db); len(st.Keys) != 2 || st.ByMaster[newKey.Fingerprint()] != 2 {
		t.Fatalf("status = %+v", st)
	}
}

// racingStorage runs another process's action just before the first
// re-wrap reaches the database.
type racingStorage struct {
	*store.DB
	once   sync.Once
	before func()
}

func (r *racingStorage) RewrapDataKeys(ctx context.Context, oldMaster string, keys []keyring.DataKey) error {
	r.once.Do(r.before)
	return r.DB.RewrapDataKeys(ctx, oldMaster, keys)
}

func TestMasterRotationIncludesADataKeyAddedMeanwhile(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	oldKey, newKey := newMaster(t), newMaster(t)
	other := newRing(t, db, oldKey)
	var added []byte
	s := &racingStorage{DB: db, before: func() {
		if _, err := other.RotateDataKey(ctx); err != nil {
			t.Error(err)
		}
		added = seal(t, other, "sealed during rotation", "aad")
	}}
	n, err := keyring.RotateMaster(ctx, s, oldKey, newKey)
	if err != nil || n != 2 {
		t.Fatalf("RotateMaster = %d, %v; want 2 keys", n, err)
	}
	mustUnseal(t, newRing(t, db, newKey), added, "aad", "sealed during rotation")
}

// failingStorage lets a re-wrap fail before or after it commits.
type failingStorage struct {
	*store.DB
	commit bool
}

func (f failingStorage) RewrapDataKeys(ctx context.Context, oldMaster string, keys []keyring.DataKey) error {
	if f.commit {
		if err := f.DB.RewrapDataKeys(ctx, oldMaster, keys); err != nil {
			return err
		}
	}
	return errors.New("connection lost")
}

func TestRotateMasterToKeyFile(t *testing.T) {
	ctx := context.Background()
	const pass = "correct horse battery staple"
	t.Run("WritesTheNewKeyAndRewraps", func(t *testing.T) {
		db := openDB(t)
		oldKey := newMaster(t)
		v := seal(t, newRing(t, db, oldKey), "value", "aad")
		path := filepath.Join(t.TempDir(), "master.key")
		next, n, err := keyring.RotateMasterToKeyFile(ctx, db, oldKey, path, pass, cheap())
		if err != nil || n != 1 {
			t.Fatalf("RotateMasterToKeyFile = %d, %v", n, err)
		}
		fromFile, err := keyring.OpenKeyFile(path, pass)
		if err != nil || !fromFile.Equal(next) {
			t.Fatalf("new key file: %v", err)
		}
		mustUnseal(t, newRing(t, db, fromFile), v, "aad", "value")
	})
	t.Run("RefusesAnExistingFile", func(t *testing.T) {
		db := openDB(t)
		oldKey := newMaster(t)
		newRing(t, db, oldKey)
		path := filepath.Join(t.TempDir(), "master.key")
		os.WriteFile(path, []byte("the current key file"), 0o600)
		if _, _, err := keyring.RotateMasterToKeyFile(ctx, db, oldKey, path, pass, cheap()); err == nil {
			t.Fatal("an existing file was replaced")
		}
		if b, _ := os.ReadFile(path); string(b) != "the current key file" {
			t.Fatal("the existing file changed")
		}
		if st := status(t, db); st.ByMaster[oldKey.Fingerprint()] != 1 {
			t.Fatalf("keys re-wrapped although the file was not written: %+v", st.ByMaster)
		}
	})
	tests := []struct {
		name     string
		commit   bool
		wantFile bool
	}{
		{"RemovesTheFileWhenNothingWasRewrapped", false, false},
		{"KeepsTheFileWhenTheRewrapCommitted", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t)
			oldKey := newMaster(t)
			newRing(t, db, oldKey)
			path := filepath.Join(t.TempDir(), "master.key")
			_, _, err := keyring.RotateMasterToKeyFile(ctx, failingStorage{DB: db, commit: tt.commit}, oldKey, path, pass, cheap())
			if err == nil {
				t.Fatal("a failed re-wrap reported success")
			}
			_, statErr := os.Stat(path)
			if exists := statErr == nil; exists != tt.wantFile {
				t.Fatalf("new key file exists = %v, want %v (error: %v)", exists, tt.wantFile, err)
			}
			if tt.wantFile {
				if !strings.Contains(err.Error(), "kept") {
					t.Fatalf("error does not say the file was kept: %v", err)
				}
				next, err := keyring.OpenKeyFile(path, pass)
				if err != nil {
					t.Fatal(err)
				}
				newRing(t, db, next) // the kept file is the key that now opens the data keys
			}
		})
	}
}
