package objstore_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
