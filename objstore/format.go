package objstore

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
)

// Object layout:
//
//	header: magic "ocob" | version 1 | log2 of the chunk size | 0 0   (8 bytes)
//	chunk 0 .. chunk n-1: AES-256-GCM(data key, nonce, plaintext, aad header) (+16 bytes tag each)
//
// Every chunk but the last holds exactly the chunk size of plaintext; the
// last holds 0 to chunk size bytes (an empty object is one empty final
// chunk). A chunk's nonce is its index (8 bytes, big endian), its final
// flag (1 byte: 1 for the last chunk, 0 otherwise) and 3 zero bytes: with
// a fresh data key per object no nonce repeats, and a chunk opens only at
// its own place with its own flag, so reordering, swapping, dropping or
// appending chunks, and cutting the object at a chunk boundary, all fail.
const (
	headerLen    = 8
	version1     = 1
	tagLen       = 16
	keyLen       = 32
	minShift     = 10 // 1 KiB chunks: tests
	maxShift     = 20 // 1 MiB chunks
	defaultShift = 16 // 64 KiB chunks
)

var magic = [4]byte{'o', 'c', 'o', 'b'}

// header returns the object header for chunks of 1<<shift bytes.
func header(shift uint8) []byte {
	return []byte{magic[0], magic[1], magic[2], magic[3], version1, shift, 0, 0}
}

// parseHeader checks a header and returns the chunk size it names.
func parseHeader(h []byte) (int, error) {
	if len(h) != headerLen || [4]byte(h[:4]) != magic || h[4] != version1 || h[6] != 0 || h[7] != 0 {
		return 0, fmt.Errorf("%w: unknown header", ErrCorrupt)
	}
	if h[5] < minShift || h[5] > maxShift {
		return 0, fmt.Errorf("%w: chunk size 2^%d out of range", ErrCorrupt, h[5])
	}
	return 1 << h[5], nil
}

func chunkNonce(idx uint64, final bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n, idx)
	if final {
		n[8] = 1
	}
	return n
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("object cipher: %w", err)
	}
	return cipher.NewGCM(b)
}

// layout is the geometry of an object of a given plaintext size.
type layout struct {
	chunk  int64 // plaintext bytes per chunk
	size   int64 // plaintext bytes
	chunks int64 // at least 1
}

func newLayout(chunk int, size int64) layout {
	n := max(1, (size+int64(chunk)-1)/int64(chunk))
	return layout{chunk: int64(chunk), size: size, chunks: n}
}

// offset is where chunk idx starts in the stored object.
func (l layout) offset(idx int64) int64 { return headerLen + idx*(l.chunk+tagLen) }

// plainLen is the plaintext length of chunk idx.
func (l layout) plainLen(idx int64) int64 {
	if idx == l.chunks-1 {
		return l.size - idx*l.chunk
	}
	return l.chunk
}

// storedSize is the length of the whole stored object.
func (l layout) storedSize() int64 { return l.offset(l.chunks-1) + l.plainLen(l.chunks-1) + tagLen }

// sealer is the io.Reader a Put hands to the backend: the header, then the
// chunks of src sealed one by one, each final flag decided by reading one
// byte ahead. It holds two chunks of memory whatever the object's size.
type sealer struct {
	src    io.Reader
	aead   cipher.AEAD
	header []byte
	chunk  int
	buf    []byte // chunk+1: a chunk and the byte that tells more follows
	carry  int    // bytes of the next chunk already in buf
	sealed []byte
	out    []byte // what Read hands out next
	idx    uint64
	n      int64 // plaintext bytes read
	done   bool
}

func newSealer(src io.Reader, aead cipher.AEAD, shift uint8) *sealer {
	c := 1 << shift
	h := header(shift)
	return &sealer{src: src, aead: aead, header: h, chunk: c, buf: make([]byte, c+1), sealed: make([]byte, 0, c+tagLen), out: h}
}

func (s *sealer) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next seals the following chunk into s.out.
func (s *sealer) next() error {
	got, err := io.ReadFull(s.src, s.buf[s.carry:])
	total := s.carry + got
	final := false
	switch err {
	case nil: // chunk+1 bytes: a full chunk with more to come
		total = s.chunk
	case io.EOF, io.ErrUnexpectedEOF:
		final = true
	default:
		return fmt.Errorf("read object content: %w", err)
	}
	s.out = s.aead.Seal(s.sealed[:0], chunkNonce(s.idx, final), s.buf[:total], s.header)
	s.n += int64(total)
	s.idx++
	s.carry = 0
	if final {
		s.done = true
	} else {
		s.buf[0] = s.buf[s.chunk]
		s.carry = 1
	}
	return nil
}
