// Package objstoretest is the contract every objstore.Backend passes: the
// same cases run against the filesystem and against Azure Blob Storage,
// through the encrypting objstore.Store with a real keyring on SQLite.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/store"
)

// Harness is one backend under test.
type Harness struct {
	Backend objstore.Backend
	// Break makes the backend's storage unreachable until Repair; nil
	// skips the case that needs it.
	Break, Repair func(t *testing.T)
}

// Keyring returns a keyring on a fresh SQLite database in a temporary
// directory, closed when the test ends.
func Keyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	master, err := keyring.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Open(ctx, db, master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// chunkShift gives the tests 1 KiB chunks, so small objects span several.
const chunkShift = 10

// Run runs the contract against backends made by newHarness, one per case.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	cases := []struct {
		name string
		run  func(*testing.T, Harness, *objstore.Store)
	}{
		{"RoundTripOfEverySize", roundTrip},
		{"ByteRangesReadOnlyTheirBytes", ranges},
		{"RawBackendRanges", rawRanges},
		{"AlteredObjectsDoNotOpen", altered},
		{"DeleteRemoves", deleteRemoves},
		{"ListByPrefix", listByPrefix},
		{"FailedPutKeepsWhatWasThere", failedPut},
		{"CancelledPutStoresNothing", cancelledPut},
		{"InvalidNamesAreRefused", invalidNames},
		{"UnreachableStorageIsAClearErrorAndLosesNothing", unreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			c.run(t, h, objstore.New(h.Backend, Keyring(t)).WithChunkSize(chunkShift))
		})
	}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func put(t *testing.T, s *objstore.Store, name string, data []byte) objstore.Object {
	t.Helper()
	o, err := s.Put(context.Background(), name, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	if o.Size != int64(len(data)) {
		t.Fatalf("put %s: size %d, want %d", name, o.Size, len(data))
	}
	return o
}

// readAll opens o and reads it whole.
func readAll(s *objstore.Store, o objstore.Object) ([]byte, error) {
	r, err := s.Open(context.Background(), o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func mustRead(t *testing.T, s *objstore.Store, o objstore.Object, want []byte) {
	t.Helper()
	got, err := readAll(s, o)
	if err != nil {
		t.Fatalf("read %s: %v", o.Name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes differ from the %d written", o.Name, len(got), len(want))
	}
}

func roundTrip(t *testing.T, _ Harness, s *objstore.Store) {
	for _, n := range []int{0, 1, 1023, 1024, 1025, 3*1024 + 5, 200_000} {
		data := random(t, n)
		mustRead(t, s, put(t, s, fmt.Sprintf("rt/obj-%d", n), data), data)
	}
	// The default chunk size too.
	big := objstore.New(s.Backend(), Keyring(t))
	data := random(t, 300_000)
	mustRead(t, big, put(t, big, "rt/default", data), data)
}

func ranges(t *testing.T, _ Harness, s *objstore.Store) {
	data := random(t, 5000)
	o := put(t, s, "ranges/obj", data)
	r, err := s.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range []struct{ off, n int64 }{
		{0, 10}, {1000, 100}, {1024, 1024}, {4990, 10}, {4999, 1}, {0, 5000}, {2047, 2}, {10, 10},
	} {
		if _, err := r.Seek(c.off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.n)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("range %d+%d: %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, data[c.off:c.off+c.n]) {
			t.Fatalf("range %d+%d differs", c.off, c.n)
		}
	}
	if end, _ := r.Seek(0, io.SeekEnd); end != 5000 {
		t.Fatalf("size by seek = %d", end)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read at the end = %d, %v", n, err)
	}
}

func rawRanges(t *testing.T, h Harness, _ *objstore.Store) {
	ctx := context.Background()
	if n, err := h.Backend.Put(ctx, "raw/digits", bytes.NewReader([]byte("0123456789"))); err != nil || n != 10 {
		t.Fatalf("put = %d, %v", n, err)
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, "0123456789"}, {3, 4, "3456"}, {7, -1, "789"}, {9, 1, "9"}} {
		rc, err := h.Backend.Get(ctx, "raw/digits", c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != c.want {
			t.Fatalf("get %d+%d = %q, %v; want %q", c.off, c.n, got, err, c.want)
		}
	}
	if _, err := h.Backend.Get(ctx, "raw/missing", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}
}

// stored returns an object's stored bytes; replace overwrites them.
func stored(t *testing.T, h Harness, name string) []byte {
	t.Helper()
	rc, err := h.Backend.Get(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func replace(t *testing.T, h Harness, name string, b []byte) {
	t.Helper()
	if _, err := h.Backend.Put(context.Background(), name, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func altered(t *testing.T, h Harness, s *objstore.Store) {
	const sealed = 1024 + 16 // one stored chunk
	const hdr = 8
	data := random(t, 3*1024+100) // chunks of 1024, 1024, 1024, 100
	other := random(t, len(data))
	cases := []struct {
		name   string
		bytes  func(own, other []byte) []byte
		object func(own, other objstore.Object) objstore.Object
	}{
		{"a flipped bit in a chunk", func(b, _ []byte) []byte { b[hdr+sealed+7] ^= 1; return b }, nil},
		{"a flipped bit in a tag", func(b, _ []byte) []byte { b[len(b)-1] ^= 0x80; return b }, nil},
		{"another chunk size in the header", func(b, _ []byte) []byte { b[5] = 11; return b }, nil},
		{"an unknown version", func(b, _ []byte) []byte { b[4] = 2; return b }, nil},
		{"cut after a whole chunk", func(b, _ []byte) []byte { return b[:hdr+3*sealed] }, nil},
		{"cut after a whole chunk, with the size to match", func(b, _ []byte) []byte { return b[:hdr+3*sealed] },
			func(o, _ objstore.Object) objstore.Object { o.Size = 3 * 1024; return o }},
		{"cut inside a chunk", func(b, _ []byte) []byte { return b[:hdr+sealed+100] }, nil},
		{"one byte short", func(b, _ []byte) []byte { return b[:len(b)-1] }, nil},
		{"one byte more", func(b, _ []byte) []byte { return append(b, 0) }, nil},
		{"a chunk appended", func(b, _ []byte) []byte { return append(b, b[hdr:hdr+sealed]...) }, nil},
		{"only the header", func(b, _ []byte) []byte { return b[:hdr] }, nil},
		{"empty", func([]byte, []byte) []byte { return nil }, nil},
		{"two chunks swapped", func(b, _ []byte) []byte {
			c0 := bytes.Clone(b[hdr : hdr+sealed])
			copy(b[hdr:], b[hdr+sealed:hdr+2*sealed])
			copy(b[hdr+sealed:], c0)
			return b
		}, nil},
		{"a chunk from another object", func(b, o []byte) []byte { copy(b[hdr+sealed:], o[hdr+sealed:hdr+2*sealed]); return b }, nil},
		{"another object's bytes", func(_, o []byte) []byte { return o }, nil},
		{"another object's sealed key", nil, func(o, x objstore.Object) objstore.Object { o.SealedKey = x.SealedKey; return o }},
		{"a size one smaller", nil, func(o, _ objstore.Object) objstore.Object { o.Size--; return o }},
		{"a size one larger", nil, func(o, _ objstore.Object) objstore.Object { o.Size++; return o }},
		{"a size a chunk smaller", nil, func(o, _ objstore.Object) objstore.Object { o.Size -= 1024; return o }},
		{"the size of an empty object", nil, func(o, _ objstore.Object) objstore.Object { o.Size = 0; return o }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			own := put(t, s, "altered/own", data)
			oth := put(t, s, "altered/other", other)
			o := own
			if c.bytes != nil {
				replace(t, h, own.Name, c.bytes(stored(t, h, own.Name), stored(t, h, oth.Name)))
			}
			if c.object != nil {
				o = c.object(own, oth)
			}
			got, err := readAll(s, o)
			if !errors.Is(err, objstore.ErrCorrupt) {
				t.Fatalf("read = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
		})
	}
}

func deleteRemoves(t *testing.T, h Harness, s *objstore.Store) {
	ctx := context.Background()
	o := put(t, s, "del/obj", random(t, 3000))
	if err := s.Delete(ctx, o.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, o); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("open after delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, o.Name); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
	if l, err := h.Backend.List(ctx, "del/"); err != nil || len(l) != 0 {
		t.Fatalf("list after delete = %v, %v", l, err)
	}
}

func names(l []objstore.Info) []string {
	var out []string
	for _, i := range l {
		out = append(out, i.Name)
	}
	return out
}

func listByPrefix(t *testing.T, h Harness, s *objstore.Store) {
	ctx := context.Background()
	for _, n := range []string{"ls/a/1", "ls/a/2", "ls/ab/3", "ls/b/4"} {
		put(t, s, n, random(t, 10))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"ls/a/", []string{"ls/a/1", "ls/a/2"}},
		{"ls/a", []string{"ls/a/1", "ls/a/2", "ls/ab/3"}},
		{"ls/", []string{"ls/a/1", "ls/a/2", "ls/ab/3", "ls/b/4"}},
		{"ls/zz/", nil},
	} {
		l, err := h.Backend.List(ctx, c.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(l); !equal(got, c.want) {
			t.Fatalf("list %q = %v, want %v", c.prefix, got, c.want)
		}
		for _, i := range l {
			if i.Size != 8+10+16 {
				t.Fatalf("%s: size %d, want %d", i.Name, i.Size, 8+10+16)
			}
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var errSource = errors.New("the upload broke off")

// failing yields n random bytes, then errSource.
type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errSource
	}
	k := min(len(p), f.n)
	_, _ = rand.Read(p[:k])
	f.n -= k
	return k, nil
}

func failedPut(t *testing.T, h Harness, s *objstore.Store) {
	ctx := context.Background()
	v1 := random(t, 5000)
	o := put(t, s, "fail/obj", v1)
	if _, err := s.Put(ctx, "fail/obj", &failing{n: 3000}); !errors.Is(err, errSource) {
		t.Fatalf("put from a failing source: %v, want its error", err)
	}
	mustRead(t, s, o, v1)
	if _, err := s.Put(ctx, "fail/new", &failing{n: 3000}); err == nil {
		t.Fatal("put from a failing source succeeded")
	}
	if l, _ := h.Backend.List(ctx, "fail/"); !equal(names(l), []string{"fail/obj"}) {
		t.Fatalf("after failed puts: %v", names(l))
	}
}

func cancelledPut(t *testing.T, h Harness, s *objstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "cancel/obj", bytes.NewReader(random(t, 5000))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: %v", err)
	}
	if l, _ := h.Backend.List(context.Background(), "cancel/"); len(l) != 0 {
		t.Fatalf("a cancelled put stored %v", names(l))
	}
}

func invalidNames(t *testing.T, h Harness, s *objstore.Store) {
	ctx := context.Background()
	for _, n := range []string{"", "../x", "a//b", "/a", "a/", "a/./b", "a/../b", ".hidden", "a b", "ä", "a\\b"} {
		if _, err := s.Put(ctx, n, bytes.NewReader(nil)); !errors.Is(err, objstore.ErrName) {
			t.Errorf("put %q: %v, want ErrName", n, err)
		}
		if _, err := h.Backend.Get(ctx, n, 0, -1); !errors.Is(err, objstore.ErrName) {
			t.Errorf("get %q: %v, want ErrName", n, err)
		}
	}
}

func unreachable(t *testing.T, h Harness, s *objstore.Store) {
	if h.Break == nil {
		t.Skip("this backend cannot be made unreachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), contextTimeout)
	defer cancel()
	v1 := random(t, 5000)
	o := put(t, s, "down/kept", v1)
	h.Break(t)
	if _, err := s.Put(ctx, "down/new", bytes.NewReader(random(t, 5000))); err == nil {
		t.Fatal("put to unreachable storage succeeded")
	} else {
		t.Logf("put while unreachable: %v", err)
	}
	if _, err := readAll(s, o); err == nil {
		t.Fatal("read from unreachable storage succeeded")
	}
	h.Repair(t)
	mustRead(t, s, o, v1)
	if l, err := h.Backend.List(ctx, "down/"); err != nil || !equal(names(l), []string{"down/kept"}) {
		t.Fatalf("after the outage: %v, %v", names(l), err)
	}
}

// contextTimeout bounds the outage case, whose backend may retry.
const contextTimeout = 60 * time.Second
