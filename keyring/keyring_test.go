package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/store"
)

// cheap keeps argon2id fast in tests; production files use the defaults.
var cheapParams = keyring.KDFParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}

func cheap() keyring.KeyFileOption { return keyring.WithKDFParams(cheapParams) }

func openDB(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func newMaster(t testing.TB) keyring.MasterKey {
	t.Helper()
	m, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newRing(t testing.TB, s keyring.Storage, m keyring.MasterKey) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Open(context.Background(), s, m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seal(t testing.TB, k *keyring.Keyring, plain, aad string) []byte {
	t.Helper()
	b, err := k.SealString(plain, []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnseal(t testing.TB, k *keyring.Keyring, sealed []byte, aad, want string) {
	t.Helper()
	got, err := k.UnsealString(sealed, []byte(aad))
	if err != nil || got != want {
		t.Fatalf("UnsealString = %q, %v; want %q", got, err, want)
	}
}

func keyID(t testing.TB, sealed []byte) uint32 {
	t.Helper()
	id, err := keyring.SealedKeyID(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSealedValueOpensWithItsAAD(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	kib := make([]byte, 1024)
	rand.Read(kib)
	tests := []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"totp secret", []byte("JBSWY3DPEHPK3PXP")},
		{"binary with zero bytes", []byte{0, 1, 0, 255, 0}},
		{"1 KiB", kib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aad := []byte("users.totp_secret:u_123")
			sealed, err := k.Seal(tt.plain, aad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.plain) >= 8 && bytes.Contains(sealed, tt.plain[:8]) {
				t.Fatal("plaintext visible in the sealed value")
			}
			got, err := k.Unseal(sealed, aad)
			if err != nil || !bytes.Equal(got, tt.plain) {
				t.Fatalf("Unseal = %x, %v; want %x", got, err, tt.plain)
			}
		})
	}
	mustUnseal(t, k, seal(t, k, "Ms. Example", "guests.name:g_1"), "guests.name:g_1", "Ms. Example")
}

func TestSealedValueDoesNotOpenInAnotherPlace(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	sealed := seal(t, k, "JBSWY3DPEHPK3PXP", "users.totp_secret:u_1")
	for _, aad := range []string{
		"users.totp_secret:u_2",  // copied to another row
		"users.email:u_1",        // copied to another column
		"users.totp_secret:u_1 ", // any difference at all
		"users.totp_secret:u_",
	} {
		if _, err := k.Unseal(sealed, []byte(aad)); !errors.Is(err, keyring.ErrUnseal) {
			t.Errorf("opened under aad %q: %v", aad, err)
		}
	}
}

func TestAlteredSealedValueIsRefused(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	sealed := seal(t, k, "chat text", "chat:c_1:7")
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			altered := bytes.Clone(sealed)
			altered[i] ^= bit
			if p, err := k.Unseal(altered, []byte("chat:c_1:7")); !errors.Is(err, keyring.ErrUnseal) {
				t.Fatalf("byte %d xor %#x: Unseal = %q, %v; want ErrUnseal", i, bit, p, err)
			}
		}
	}
}

func TestTruncatedOrGarbageValueIsAnErrorNotAPanic(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	sealed := seal(t, k, "chat text", "aad")
	for n := range len(sealed) {
		if _, err := k.Unseal(sealed[:n], []byte("aad")); !errors.Is(err, keyring.ErrUnseal) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
		if _, err := keyring.SealedKeyID(sealed[:n]); n < 33 && err == nil {
			t.Fatalf("SealedKeyID accepted %d bytes", n)
		}
	}
	garbage := [][]byte{
		append(bytes.Clone(sealed), 0),
		bytes.Repeat([]byte{0xff}, 64),
		bytes.Repeat([]byte{0x01}, 33),
		append([]byte{1, 0, 0, 0, 0}, make([]byte, 40)...), // key id 0
		append([]byte{2}, sealed[1:]...),                   // unknown version
	}
	for _, g := range garbage {
		if _, err := k.Unseal(g, []byte("aad")); !errors.Is(err, keyring.ErrUnseal) {
			t.Errorf("garbage %x: %v", g, err)
		}
	}
}

func TestSealAndUnsealNeedAAD(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	if _, err := k.Seal([]byte("x"), nil); !errors.Is(err, keyring.ErrNoAAD) {
		t.Fatalf("Seal without aad: %v", err)
	}
	sealed := seal(t, k, "x", "aad")
	if _, err := k.Unseal(sealed, nil); !errors.Is(err, keyring.ErrNoAAD) {
		t.Fatalf("Unseal without aad: %v", err)
	}
}

func TestSealingTwiceGivesDifferentValues(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	a, b := seal(t, k, "same", "aad"), seal(t, k, "same", "aad")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are identical: the nonce is not fresh")
	}
	if a[0] != 1 || len(a) != 1+4+12+len("same")+16 {
		t.Fatalf("layout: version %d, %d bytes", a[0], len(a))
	}
}

func TestKeyMaterialIsNeverFormatted(t *testing.T) {
	m := newMaster(t)
	k := newRing(t, openDB(t), m)
	raw, _ := base64.StdEncoding.DecodeString(m.Base64())
	forbidden := []string{m.Base64(), hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)),
		strings.Trim(fmt.Sprint(raw[:6]), "[]"), base64.RawURLEncoding.EncodeToString(raw)}
	holder := struct{ Key keyring.MasterKey }{m}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		out = append(out, fmt.Sprintf(verb, m), fmt.Sprintf(verb, &m), fmt.Sprintf(verb, holder), fmt.Sprintf(verb, k))
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "master", m, "keyring", k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("start", "master", m, "holder", holder)
	out = append(out, logged.String())
	for _, s := range out {
		for _, f := range forbidden {
			if strings.Contains(s, f) {
				t.Fatalf("formatted key material %q in %q", f, s)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(m), m.Fingerprint()) {
		t.Fatalf("a master key should print as its fingerprint, got %q", fmt.Sprint(m))
	}
}

func TestMasterKeyFromBase64(t *testing.T) {
	m := newMaster(t)
	got, err := keyring.MasterKeyFromBase64(" " + m.Base64() + "\n")
	if err != nil || !got.Equal(m) {
		t.Fatalf("round trip: %v", err)
	}
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"not base64", "not base64 at all!"},
		{"31 bytes", base64.StdEncoding.EncodeToString(make([]byte, 31))},
		{"33 bytes", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))},
		{"all zero", base64.StdEncoding.EncodeToString(make([]byte, 32))},
		{"hex instead of base64", hex.EncodeToString(bytes.Repeat([]byte{9}, 32))},
	}
	for _, tt := range tests {
		_, err := keyring.MasterKeyFromBase64(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
		} else if tt.in != "" && strings.Contains(err.Error(), tt.in) {
			t.Errorf("%s: error repeats the input: %v", tt.name, err)
		}
	}
}

func TestZeroMasterKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	var zero keyring.MasterKey
	if _, err := keyring.Open(ctx, db, zero); err == nil {
		t.Fatal("Open with a zero master key succeeded")
	}
	if keys, _ := db.DataKeys(ctx); len(keys) != 0 {
		t.Fatalf("a zero master key wrapped %d data keys", len(keys))
	}
	m := newMaster(t)
	newRing(t, db, m)
	if _, err := keyring.RotateMaster(ctx, db, m, zero); err == nil {
		t.Fatal("rotation to a zero master key succeeded")
	}
	if err := keyring.WriteKeyFile(filepath.Join(t.TempDir(), "k"), "a long enough passphrase", zero, cheapParams); err == nil {
		t.Fatal("a zero master key was written to a key file")
	}
}

func TestClosedKeyringRefusesWork(t *testing.T) {
	k := newRing(t, openDB(t), newMaster(t))
	sealed := seal(t, k, "x", "aad")
	k.Close()
	if _, err := k.Seal([]byte("x"), []byte("aad")); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("Seal after Close: %v", err)
	}
	if _, err := k.Unseal(sealed, []byte("aad")); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("Unseal after Close: %v", err)
	}
	if _, err := k.RotateDataKey(context.Background()); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("RotateDataKey after Close: %v", err)
	}
	if err := k.Refresh(context.Background()); !errors.Is(err, keyring.ErrClosed) {
		t.Errorf("Refresh after Close: %v", err)
	}
}

// TestSealAndUnsealWhileAnotherProcessRotates runs under -race in CI: values
// keep sealing and opening while data keys rotate underneath.
func TestSealAndUnsealWhileAnotherProcessRotates(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	m := newMaster(t)
	server, operator := newRing(t, db, m), newRing(t, db, m)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				aad := fmt.Appendf(nil, "chat:c_%d:%d", w, i)
				sealed, err := server.Seal([]byte("hello"), aad)
				if err == nil {
					_, err = server.Unseal(sealed, aad)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var fromOperator [][]byte
	for range 5 {
		if _, err := operator.RotateDataKey(ctx); err != nil {
			t.Fatal(err)
		}
		fromOperator = append(fromOperator, seal(t, operator, "rotated", "aad"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, v := range fromOperator {
		mustUnseal(t, server, v, "aad", "rotated")
	}
	if got := keyID(t, seal(t, server, "x", "aad")); got != 6 {
		t.Fatalf("server seals with data key %d after meeting key 6", got)
	}
}
