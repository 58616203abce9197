package objstore_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/objstore/objstoretest"
)

func TestFSBackendContract(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstoretest.Harness {
		dir := filepath.Join(t.TempDir(), "objects")
		b, err := objstore.NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		aside := dir + ".aside"
		return objstoretest.Harness{
			Backend: b,
			// A file where the directory was: every operation fails.
			Break: func(t *testing.T) {
				if err := os.Rename(dir, aside); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			Repair: func(t *testing.T) {
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(aside, dir); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func TestFSObjectsAreOwnerOnlyAndLeaveNoTemporaryFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	b, err := objstore.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := objstore.New(b, objstoretest.Keyring(t))
	ctx := context.Background()
	if _, err := s.Put(ctx, "documents/x/obj", strings.NewReader("content")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "documents/x/broken", iotest.ErrReader(errors.New("cut"))); err == nil {
		t.Fatal("put from a failing reader succeeded")
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode(), want)
		}
		if !d.IsDir() && filepath.Base(p) != "obj" {
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestStoringAndReadingTakeChunksOfMemoryNotTheObject(t *testing.T) {
	const size = 10 << 20
	b, err := objstore.NewFS(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	s := objstore.New(b, objstoretest.Keyring(t))
	ctx := context.Background()
	var o objstore.Object
	put := allocated(func() {
		o, err = s.Put(ctx, "big/obj", io.LimitReader(zeros{}, size))
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	get := allocated(func() {
		var r *objstore.Reader
		if r, err = s.Open(ctx, o); err != nil {
			return
		}
		defer r.Close()
		// Seek as http.ServeContent does, then stream to the end.
		_, _ = r.Seek(0, io.SeekEnd)
		_, _ = r.Seek(0, io.SeekStart)
		n, err = io.CopyBuffer(io.Discard, r, make([]byte, 32<<10))
	})
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	t.Logf("a %d MiB object: %d KiB allocated to store it, %d KiB to read it", size>>20, put>>10, get>>10)
	if put > 1<<20 || get > 1<<20 {
		t.Fatalf("%d and %d bytes allocated for a %d byte object: more than a few chunks", put, get, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
