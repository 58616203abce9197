package objstore

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

// memBackend serves one object's bytes from memory, so the fuzz target
// exercises the chunk decoder rather than the disk.
type memBackend struct{ b []byte }

func (m memBackend) Put(context.Context, string, io.Reader) (int64, error) {
	return 0, errors.New("read only")
}
func (m memBackend) Get(_ context.Context, _ string, off, length int64) (io.ReadCloser, error) {
	if off > int64(len(m.b)) {
		off = int64(len(m.b))
	}
	rest := m.b[off:]
	if length >= 0 && length < int64(len(rest)) {
		rest = rest[:length]
	}
	return io.NopCloser(bytes.NewReader(rest)), nil
}
func (m memBackend) Delete(context.Context, string) error { return nil }
func (m memBackend) List(context.Context, string) ([]Info, error) {
	return nil, nil
}

// FuzzChunkDecoder hands the decoder arbitrary stored bytes, sizes and
// read positions in place of a real object. It must never panic, and
// whatever it accepts must be exactly the object that was written: any
// other input is ErrCorrupt.
func FuzzChunkDecoder(f *testing.F) {
	key := make([]byte, keyLen)
	_, _ = rand.Read(key)
	aead, err := newGCM(key)
	if err != nil {
		f.Fatal(err)
	}
	data := make([]byte, 2500)
	_, _ = rand.Read(data)
	good, err := io.ReadAll(newSealer(bytes.NewReader(data), aead, minShift))
	if err != nil {
		f.Fatal(err)
	}
	size := int64(len(data))
	f.Add(good, size, int64(0))
	f.Add(good, size, int64(1500))
	f.Add(good[:len(good)-1], size, int64(0))
	f.Add(good[:headerLen+1024+tagLen], int64(1024), int64(0))
	f.Add(good[:headerLen], int64(0), int64(0))
	f.Add([]byte("ocob\x01\x14\x00\x00"), int64(5), int64(2))
	f.Add(good, int64(1)<<62, int64(0))
	f.Fuzz(func(t *testing.T, stored []byte, size, off int64) {
		if off < 0 {
			return
		}
		got, err := decode(memBackend{stored}, aead, size, off)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error that is not ErrCorrupt: %v", err)
			}
			return
		}
		if size != int64(len(data)) || !bytes.Equal(stored, good) {
			if off < size || len(got) > 0 {
				t.Fatalf("accepted %d bytes of an altered object (size %d, off %d)", len(got), size, off)
			}
			return
		}
		if off < size && !bytes.Equal(got, data[off:]) {
			t.Fatal("read differs from what was written")
		}
	})
}

// decode opens an object as Store.Open does and reads it from off on.
func decode(b Backend, aead cipher.AEAD, size, off int64) ([]byte, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	rc, _ := b.Get(context.Background(), "fuzz/obj", 0, -1)
	r, err := newReader(context.Background(), b, "fuzz/obj", aead, size, rc)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
