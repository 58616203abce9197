package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Backend stores opaque bytes under names. Names are slash-separated paths
// of letters, digits, '-', '_' and '.', without empty elements or
// elements that start with '.'. Implementations are safe for concurrent use.
type Backend interface {
	// Put stores everything r yields under name and returns how many
	// bytes that was. The object appears, or replaces an older one of the
	// same name, only once all of it is stored: a Put that fails (r's
	// error, the context, the storage) leaves what was there before.
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Get reads the object from byte off on, length bytes or to its end
	// when length < 0. A missing object is ErrNotFound.
	Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Delete removes the object; a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// List returns the objects whose names start with prefix, by name.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info describes a stored object.
type Info struct {
	Name string
	Size int64 // stored (encrypted) bytes
}

// Errors a caller can act on.
var (
	// ErrNotFound: no object of that name.
	ErrNotFound = errors.New("object not found")
	// ErrCorrupt: the stored object does not open. It was altered,
	// truncated, extended, had chunks reordered, belongs to another name,
	// or the sealed key or size kept for it is not its own.
	ErrCorrupt = errors.New("stored object does not open (altered, truncated or not this object)")
	// ErrName: the name is not a valid object name.
	ErrName = errors.New("invalid object name")
)

// CheckName returns an error wrapping ErrName unless name is valid.
func CheckName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("%w: %d bytes", ErrName, len(name))
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" || elem[0] == '.' { // also ".", ".." and temporary files
			return fmt.Errorf("%w %q", ErrName, name)
		}
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)
		if !ok {
			return fmt.Errorf("%w %q", ErrName, name)
		}
	}
	return nil
}

// CheckPrefix returns an error wrapping ErrName unless prefix is empty, a
// valid name, or one followed by '/'.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if strings.HasSuffix(prefix, "/") {
		return CheckName(prefix + "x")
	}
	return CheckName(prefix)
}

// ctxReader fails reads once ctx is done, so a Put copying from a slow
// source stops when its caller gives up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ContextReader returns r failing reads once ctx is done; backends wrap
// the reader of a Put in it.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }
