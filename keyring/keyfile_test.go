package keyring_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/keyring"
)

const passphrase = "correct horse battery staple"

func newKeyFile(t *testing.T) (string, keyring.MasterKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	m, err := keyring.NewKeyFile(path, passphrase, cheap())
	if err != nil {
		t.Fatal(err)
	}
	return path, m
}

func TestKeyFileOpensOnlyWithItsPassphrase(t *testing.T) {
	path, m := newKeyFile(t)
	got, err := keyring.OpenKeyFile(path, passphrase)
	if err != nil || !got.Equal(m) {
		t.Fatalf("OpenKeyFile with the passphrase: %v", err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", passphrase + " ", strings.ToUpper(passphrase), "an entirely different phrase"} {
		_, err := keyring.OpenKeyFile(path, wrong)
		if !errors.Is(err, keyring.ErrWrongPassphrase) {
			t.Errorf("passphrase %q: %v, want ErrWrongPassphrase", wrong, err)
			continue
		}
		if wrong != "" && strings.Contains(err.Error(), wrong) {
			t.Errorf("error repeats the passphrase: %v", err)
		}
	}
	if got, _ := keyring.ReadKeyFile(path, passphrase); !got.Equal(m) {
		t.Fatal("ReadKeyFile disagrees with OpenKeyFile")
	}
}

func TestKeyFileIsPrivateAndHoldsNoPlainKey(t *testing.T) {
	path, m := newKeyFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	raw, _ := base64.StdEncoding.DecodeString(m.Base64())
	for _, form := range [][]byte{raw, []byte(m.Base64()), []byte(hex.EncodeToString(raw)), []byte(base64.RawURLEncoding.EncodeToString(raw))} {
		if bytes.Contains(b, form) {
			t.Fatalf("the key file holds the master key in clear (%q)", form)
		}
	}
	if bytes.Contains(b, []byte(passphrase)) {
		t.Fatal("the key file holds the passphrase")
	}
	var doc struct {
		Format      string            `json:"format"`
		Params      keyring.KDFParams `json:"params"`
		Fingerprint string            `json:"fingerprint"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Format != "openconsult-master-key-v1" || doc.Params != cheapParams || doc.Fingerprint != m.Fingerprint() {
		t.Fatalf("recorded %+v", doc)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left beside the key file: %v", entries)
	}
}

func TestKeyFileIsNeverReplaced(t *testing.T) {
	path, m := newKeyFile(t)
	before, _ := os.ReadFile(path)
	if _, err := keyring.NewKeyFile(path, passphrase, cheap()); err == nil {
		t.Fatal("NewKeyFile replaced an existing key file")
	}
	if err := keyring.WriteKeyFile(path, passphrase, newMaster(t), cheapParams); err == nil {
		t.Fatal("WriteKeyFile replaced an existing key file")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the existing key file changed")
	}
	if got, err := keyring.OpenKeyFile(path, passphrase); err != nil || !got.Equal(m) {
		t.Fatalf("the original key no longer opens: %v", err)
	}
}

func TestKeyFileRefusesWeakSettings(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		pass   string
		params keyring.KDFParams
	}{
		{"short passphrase", "eleven char", cheapParams},
		{"memory below 8 MiB", passphrase, keyring.KDFParams{MemoryKiB: 1024, Time: 1, Threads: 1}},
		{"zero passes", passphrase, keyring.KDFParams{MemoryKiB: 8192, Time: 0, Threads: 1}},
		{"zero threads", passphrase, keyring.KDFParams{MemoryKiB: 8192, Time: 1, Threads: 0}},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
		if _, err := keyring.NewKeyFile(path, tt.pass, keyring.WithKDFParams(tt.params)); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a file was written", tt.name)
		}
	}
}

func TestChangePassphraseKeepsTheMasterKey(t *testing.T) {
	path, m := newKeyFile(t)
	const next = "a new and longer passphrase"
	raised := keyring.KDFParams{MemoryKiB: 9 * 1024, Time: 2, Threads: 2}
	if err := keyring.ChangePassphrase(path, "not the passphrase", next, cheap()); !errors.Is(err, keyring.ErrWrongPassphrase) {
		t.Fatalf("change with a wrong passphrase: %v", err)
	}
	if err := keyring.ChangePassphrase(path, passphrase, next, keyring.WithKDFParams(raised)); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.OpenKeyFile(path, passphrase); !errors.Is(err, keyring.ErrWrongPassphrase) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	got, err := keyring.OpenKeyFile(path, next)
	if err != nil || !got.Equal(m) {
		t.Fatalf("new passphrase: %v (same key: %v)", err, got.Equal(m))
	}
	b, _ := os.ReadFile(path)
	var doc struct {
		Params keyring.KDFParams `json:"params"`
	}
	json.Unmarshal(b, &doc)
	if doc.Params != raised {
		t.Fatalf("recorded params %+v, want %+v", doc.Params, raised)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after change %o", fi.Mode().Perm())
	}
	if err := keyring.ChangePassphrase(path, next, "short", cheap()); err == nil {
		t.Fatal("changed to a short passphrase")
	}
	if _, err := keyring.OpenKeyFile(path, next); err != nil {
		t.Fatalf("a refused change altered the file: %v", err)
	}
}

// editKeyFile returns a valid key file's JSON with one field replaced.
func editKeyFile(t *testing.T, valid []byte, field string, value any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(valid, &doc); err != nil {
		t.Fatal(err)
	}
	doc[field] = value
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMalformedKeyFileIsAnError(t *testing.T) {
	path, m := newKeyFile(t)
	valid, _ := os.ReadFile(path)
	other := newMaster(t)
	short := base64.StdEncoding.EncodeToString(make([]byte, 8))
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("-----BEGIN PRIVATE KEY-----")},
		{"empty object", []byte("{}")},
		{"unknown format", editKeyFile(t, valid, "format", "openconsult-master-key-v9")},
		{"another KDF", editKeyFile(t, valid, "kdf", "scrypt")},
		{"memory bomb", editKeyFile(t, valid, "params", map[string]int{"memory_kib": 1 << 30, "time": 1, "threads": 1})},
		{"too cheap", editKeyFile(t, valid, "params", map[string]int{"memory_kib": 64, "time": 1, "threads": 1})},
		{"endless passes", editKeyFile(t, valid, "params", map[string]int{"memory_kib": 8192, "time": 100000, "threads": 1})},
		{"short salt", editKeyFile(t, valid, "salt", short)},
		{"short nonce", editKeyFile(t, valid, "nonce", short)},
		{"truncated sealed key", editKeyFile(t, valid, "sealed_key", short)},
		{"edited fingerprint", editKeyFile(t, valid, "fingerprint", other.Fingerprint())},
		{"huge file", bytes.Repeat([]byte(" "), 1<<20)},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(p, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := keyring.OpenKeyFile(p, passphrase)
			if err == nil {
				t.Fatalf("accepted, key %s", got.Fingerprint())
			}
			if errors.Is(err, keyring.ErrWrongPassphrase) {
				t.Fatalf("reported as a wrong passphrase: %v", err)
			}
		})
	}
	if got, err := keyring.OpenKeyFile(path, passphrase); err != nil || !got.Equal(m) {
		t.Fatalf("the unedited file: %v", err)
	}
	if _, err := keyring.OpenKeyFile(filepath.Join(t.TempDir(), "missing.key"), passphrase); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
