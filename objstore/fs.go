package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FS is the filesystem Backend: one file per object under a directory
// (directories 0700, files 0600). A Put writes a temporary file beside the
// object, syncs it, renames it into place and syncs the directory, so the
// object is there whole or not at all, also after a crash.
type FS struct {
	dir string
}

// tmpPrefix marks files a Put is still writing; List skips them.
const tmpPrefix = ".put-"

// NewFS returns the backend storing under dir, which it creates.
func NewFS(dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("object directory: %w", err)
	}
	return &FS{dir: dir}, nil
}

func (f *FS) path(name string) string { return filepath.Join(f.dir, filepath.FromSlash(name)) }

// Put implements Backend.
func (f *FS) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	dst := f.path(name)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("object directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*") // mode 0600
	if err != nil {
		return 0, fmt.Errorf("create object file: %w", err)
	}
	n, err := f.write(ctx, tmp, r)
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, err
	}
	return n, nil
}

func (f *FS) write(ctx context.Context, tmp *os.File, r io.Reader) (int64, error) {
	n, err := io.Copy(tmp, ContextReader(ctx, r))
	if err != nil {
		tmp.Close()
		return 0, fmt.Errorf("write object file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("sync object file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("close object file: %w", err)
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync object directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync object directory: %w", err)
	}
	return nil
}

// Get implements Backend.
func (f *FS) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("read object %s: negative offset", name)
	}
	file, err := os.Open(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("open object file: %w", err)
	}
	if length < 0 {
		length = 1<<63 - 1 - off
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(file, off, length), file}, nil
}

// Delete implements Backend.
func (f *FS) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := f.path(name)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete object file: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// List implements Backend.
func (f *FS) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	// Walk only the directory the prefix reaches into.
	root := f.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		root = f.path(prefix[:i])
	}
	var out []Info
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, Info{Name: name, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
