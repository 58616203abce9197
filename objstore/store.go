package objstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Sealer seals the data keys (keyring.Keyring implements it); aad binds a
// sealed key to its object's name.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Unseal(sealed, aad []byte) ([]byte, error)
}

// Object is what the caller keeps to read an object back: its name, its
// data key sealed by the Sealer, and its plaintext size. None of it is
// secret in this form.
type Object struct {
	Name      string
	SealedKey []byte
	Size      int64
}

// Store encrypts objects into a Backend.
type Store struct {
	backend Backend
	sealer  Sealer
	shift   uint8
}

// New returns a Store writing 64 KiB chunks into b, with data keys sealed
// by s.
func New(b Backend, s Sealer) *Store { return &Store{backend: b, sealer: s, shift: defaultShift} }

// WithChunkSize returns a Store writing chunks of 1<<shift bytes (10 to
// 20); objects of any chunk size stay readable. Tests use small chunks.
func (s *Store) WithChunkSize(shift uint8) *Store {
	c := *s
	c.shift = min(max(shift, minShift), maxShift)
	return &c
}

// Backend returns the store's backend.
func (s *Store) Backend() Backend { return s.backend }

func keyAAD(name string) []byte { return []byte("objstore.key:" + name) }

// Put encrypts what r yields under a fresh data key and stores it as
// name, replacing an object of that name only when all of it is stored.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) (Object, error) {
	if err := CheckName(name); err != nil {
		return Object{}, err
	}
	key := make([]byte, keyLen)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return Object{}, fmt.Errorf("object data key: %w", err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return Object{}, err
	}
	sealed, err := s.sealer.Seal(key, keyAAD(name))
	if err != nil {
		return Object{}, fmt.Errorf("seal object data key: %w", err)
	}
	src := newSealer(r, aead, s.shift)
	stored, err := s.backend.Put(ctx, name, src)
	if err != nil {
		return Object{}, fmt.Errorf("store object %s: %w", name, err)
	}
	o := Object{Name: name, SealedKey: sealed, Size: src.n}
	if want := newLayout(src.chunk, src.n).storedSize(); !src.done || stored != want {
		return Object{}, fmt.Errorf("store object %s: stored %d bytes of %d", name, stored, want)
	}
	return o, nil
}

// Open returns a reader of the object o describes. It reads the header
// now and the chunks as they are read.
func (s *Store) Open(ctx context.Context, o Object) (*Reader, error) {
	if err := CheckName(o.Name); err != nil {
		return nil, err
	}
	if err := checkSize(o.Size); err != nil {
		return nil, fmt.Errorf("object %s: %w", o.Name, err)
	}
	key, err := s.sealer.Unseal(o.SealedKey, keyAAD(o.Name))
	if err != nil {
		return nil, fmt.Errorf("object %s: data key: %w", o.Name, errors.Join(ErrCorrupt, err))
	}
	defer clear(key)
	if len(key) != keyLen {
		return nil, fmt.Errorf("object %s: %w: data key of %d bytes", o.Name, ErrCorrupt, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	rc, err := s.backend.Get(ctx, o.Name, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read object %s: %w", o.Name, err)
	}
	r, err := newReader(ctx, s.backend, o.Name, aead, o.Size, rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("object %s: %w", o.Name, err)
	}
	return r, nil
}

// Delete removes the object named name.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := s.backend.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete object %s: %w", name, err)
	}
	return nil
}

// maxSize bounds an object's plaintext (1 PiB), so that no size read
// from a database overflows the layout's arithmetic.
const maxSize = 1 << 50

func checkSize(size int64) error {
	if size < 0 || size > maxSize {
		return fmt.Errorf("%w: size %d out of range", ErrCorrupt, size)
	}
	return nil
}
