package audit_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openconsult/openconsult/audit"
)

func TestSigningKeyFileRoundTripsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-signing.key")
	skey, vkey, err := audit.GenerateSigningKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.SaveSigningKey(path, skey); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	s, err := audit.LoadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey || s.Origin() != origin {
		t.Fatalf("loaded %s (%s), want %s", s.VerifierKey(), s.Origin(), vkey)
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Fields(string(b)); len(lines) != 2 || lines[1] != vkey {
		t.Fatalf("file holds %q", b)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %s", s, s, s), "PRIVATE") {
		t.Fatal("signer prints its secret key")
	}
	if err := audit.SaveSigningKey(path, skey); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwriting a key file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".audit-key-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestSigningKeyFileIsRefusedWhenOthersCanReadItOrItDoesNotMatch(t *testing.T) {
	dir := t.TempDir()
	skey, _, _ := audit.GenerateSigningKey(origin)
	_, otherV, _ := audit.GenerateSigningKey(origin)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"group readable", skey + "\n" + newSignerVKey(t, skey) + "\n", 0o640},
		{"world readable", skey + "\n" + newSignerVKey(t, skey) + "\n", 0o604},
		{"verifier key of another key", skey + "\n" + otherV + "\n", 0o600},
		{"secret key only", skey + "\n", 0o600},
		{"garbage", "PRIVATE+KEY+x+00000000+AAAA\nx+00000000+AAAA\n", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // despite the umask
				t.Fatal(err)
			}
			if _, err := audit.LoadSigner(path); err == nil {
				t.Fatal("loaded")
			}
		})
	}
}

func newSignerVKey(t *testing.T, skey string) string {
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s.VerifierKey()
}

func TestConcurrentFirstStartsCreateOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-signing.key")
	const n = 8
	keys := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := audit.LoadOrCreateSigner(path, origin)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = s.VerifierKey()
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] {
			t.Fatalf("two keys in use: %s and %s", keys[0], k)
		}
	}
	// A later start keeps the key and its name whatever origin it is given.
	s, err := audit.LoadOrCreateSigner(path, "renamed.example/audit")
	if err != nil || s.VerifierKey() != keys[0] {
		t.Fatalf("reload: %v, %v", s, err)
	}
}

func FuzzOpenCheckpoint(f *testing.F) {
	s := newSigner(f, origin)
	good, err := s.Sign(audit.Checkpoint{Origin: origin, Size: 12, Root: make([]byte, 32)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(origin + "\n1\nAAAA\n\n\u2014 " + origin + " AAAA\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, note []byte) {
		cp, err := audit.OpenCheckpoint(note, s.VerifierKey())
		if err != nil {
			return
		}
		// Whatever opens was signed by s: re-signing gives the same note.
		again, err := s.Sign(cp)
		if err != nil || cp.Origin != origin || len(cp.Root) != 32 {
			t.Fatalf("opened %+v from %q", cp, note)
		}
		if _, err := audit.OpenCheckpoint(again, s.VerifierKey()); err != nil {
			t.Fatalf("re-signed checkpoint refused: %v", err)
		}
	})
}
