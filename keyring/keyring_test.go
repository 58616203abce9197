package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/store"
)

var cheap = keyring.KDFParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

func newRing(t *testing.T, db *store.DB, m keyring.MasterKey) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Open(context.Background(), db, m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealUnsealBindsToPlace(t *testing.T) {
	m, _ := keyring.NewMasterKey()
	k := newRing(t, openDB(t), m)
	sealed, err := k.SealString("JBSWY3DPEHPK3PXP", []byte("users.totp_secret:u_1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("JBSWY3DP")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if got, err := k.UnsealString(sealed, []byte("users.totp_secret:u_1")); err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name  string
		value []byte
		aad   string
	}{
		{"other row", sealed, "users.totp_secret:u_2"},
		{"other column", sealed, "users.email:u_1"},
		{"tampered", tampered, "users.totp_secret:u_1"},
		{"truncated", sealed[:20], "users.totp_secret:u_1"},
		{"empty", nil, "users.totp_secret:u_1"},
		{"unknown key id", append([]byte{1, 0, 0, 0, 99}, sealed[5:]...), "users.totp_secret:u_1"},
	}
	for _, tt := range tests {
		if _, err := k.Unseal(tt.value, []byte(tt.aad)); !errors.Is(err, keyring.ErrUnseal) {
			t.Errorf("%s: %v, want ErrUnseal", tt.name, err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	m, _ := keyring.NewMasterKey()
	if err := keyring.WriteKeyFile(path, "short", m, cheap); err == nil {
		t.Fatal("a short passphrase was accepted")
	}
	if err := keyring.WriteKeyFile(path, "a long enough passphrase", m, cheap); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), m.Base64()) {
		t.Fatal("the key file holds the master key in clear")
	}
	if _, err := keyring.ReadKeyFile(path, "a wrong passphrase!!"); !errors.Is(err, keyring.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	got, err := keyring.ReadKeyFile(path, "a long enough passphrase")
	if err != nil || got.Fingerprint() != m.Fingerprint() {
		t.Fatalf("ReadKeyFile = %v, %v", got.Fingerprint(), err)
	}
	for _, bad := range []string{"", "{}", `{"format":"openconsult-master-key-v1","kdf":"argon2id","params":{"memory_kib":99999999,"time":1,"threads":1}}`} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := keyring.ReadKeyFile(path, "a long enough passphrase"); err == nil {
			t.Errorf("key file %q accepted", bad)
		}
	}
}

func TestMasterRotationKeepsValuesReadable(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	oldKey, _ := keyring.NewMasterKey()
	running := newRing(t, db, oldKey)
	sealed, _ := running.SealString("note", []byte("aad"))

	newKey, _ := keyring.NewMasterKey()
	if n, err := keyring.RotateMaster(ctx, db, oldKey, newKey); err != nil || n != 1 {
		t.Fatalf("RotateMaster = %d, %v", n, err)
	}
	// The server that started before the rotation keeps working.
	if got, err := running.UnsealString(sealed, []byte("aad")); err != nil || got != "note" {
		t.Fatalf("running server after rotation: %q, %v", got, err)
	}
	// A restart needs the new key; the old one is refused with both names.
	if _, err := keyring.Open(ctx, db, oldKey); err == nil || !strings.Contains(err.Error(), newKey.Fingerprint()) {
		t.Fatalf("old master key after rotation: %v", err)
	}
	restarted := newRing(t, db, newKey)
	if got, err := restarted.UnsealString(sealed, []byte("aad")); err != nil || got != "note" {
		t.Fatalf("restarted server: %q, %v", got, err)
	}
	if _, err := keyring.RotateMaster(ctx, db, oldKey, newKey); err == nil {
		t.Fatal("rotation from a key that no longer wraps the data keys succeeded")
	}
}

func TestDataKeyRotationAndAnotherNode(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	m, _ := keyring.NewMasterKey()
	a := newRing(t, db, m)
	b := newRing(t, db, m)
	before, _ := a.SealString("old value", []byte("x"))
	id, err := a.RotateDataKey(ctx)
	if err != nil || id != 2 {
		t.Fatalf("RotateDataKey = %d, %v", id, err)
	}
	after, _ := a.SealString("new value", []byte("x"))
	if after[4] != 2 || before[4] != 1 {
		t.Fatalf("key ids in values: before %d after %d", before[4], after[4])
	}
	// Node b learns about key 2 the first time it meets it.
	for _, v := range [][]byte{before, after} {
		if _, err := b.Unseal(v, []byte("x")); err != nil {
			t.Fatalf("other node: %v", err)
		}
	}
	keys, _ := keyring.Describe(ctx, db)
	if len(keys) != 2 || keys[0].Active || !keys[1].Active || keys[1].Wrapped != nil {
		t.Fatalf("Describe = %+v", keys)
	}
}

func TestMasterKeyFromBase64(t *testing.T) {
	m, _ := keyring.NewMasterKey()
	got, err := keyring.MasterKeyFromBase64(" " + m.Base64() + "\n")
	if err != nil || got.Fingerprint() != m.Fingerprint() {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "abc", "AAAA"} {
		if _, err := keyring.MasterKeyFromBase64(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzUnseal(f *testing.F) {
	m, _ := keyring.NewMasterKey()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(f.TempDir(), "f.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	db.Migrate(context.Background())
	k, err := keyring.Open(context.Background(), db, m)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := k.Seal([]byte("seed"), []byte("aad"))
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := k.Unseal(b, []byte("aad")); err == nil && !bytes.Equal(b, good) {
			t.Fatalf("forged value opened: %q", p)
		}
	})
}
