package backup

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/openconsult/openconsult/keyring"
)

func newKey(t testing.TB) keyring.MasterKey {
	t.Helper()
	m, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func seal(t testing.TB, m keyring.MasterKey, content []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func open(m keyring.MasterKey, b []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(b), m)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTripRestoresTheContent(t *testing.T) {
	m := newKey(t)
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, 2*ChunkSize + 17} {
		content := make([]byte, size)
		rand.Read(content)
		got, err := open(m, seal(t, m, content))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, content))
		}
	}
}

func TestDamagedBackupsAreRefused(t *testing.T) {
	m := newKey(t)
	content := make([]byte, 2*ChunkSize+100)
	rand.Read(content)
	good := seal(t, m, content)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	// The second chunk starts after the header and one full sealed chunk.
	second := headerLen + 5 + ChunkSize + 16
	for _, tc := range []struct {
		name   string
		backup []byte
		want   error
	}{
		{"empty file", nil, ErrNotBackup},
		{"other file", []byte("SQLite format 3\x00 and more bytes than a header has, certainly"), ErrNotBackup},
		{"salt altered", flip(len(magic) + 1 + fpLen + 3), ErrAltered},
		{"first chunk altered", flip(headerLen + 100), ErrAltered},
		{"last chunk altered", flip(len(good) - 3), ErrAltered},
		{"last flag set early", flip(headerLen), ErrAltered},
		{"chunk dropped", append(bytes.Clone(good[:headerLen]), good[second:]...), ErrAltered},
		{"cut after a chunk", good[:second], ErrTruncated},
		{"cut inside a chunk", good[:second+1000], ErrTruncated},
		{"last byte missing", good[:len(good)-1], ErrTruncated},
		{"data appended", append(bytes.Clone(good), 0), ErrTrailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := open(m, tc.backup); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAnotherMasterKeyIsNamed(t *testing.T) {
	m, other := newKey(t), newKey(t)
	_, err := open(other, seal(t, m, []byte("data")))
	var wrong *WrongKeyError
	if !errors.As(err, &wrong) || wrong.Backup != m.Fingerprint() || wrong.Given != other.Fingerprint() {
		t.Fatalf("got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	m, err := keyring.MasterKeyFromBase64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seal(f, m, []byte("some content")))
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := open(m, b)
		if err == nil && len(got) > len(b) {
			t.Fatalf("%d bytes of content from %d bytes of backup", len(got), len(b))
		}
	})
}
