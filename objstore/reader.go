package objstore

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// Reader reads an object's plaintext, decrypting one chunk at a time. It
// implements io.ReadSeeker (for http.ServeContent and its byte ranges):
// reading on from where the last read stopped continues one stream from
// the backend; a seek to another chunk opens a new stream there. Memory
// stays at two chunks whatever the object's size. Every chunk is
// authenticated before any of its bytes are returned; a chunk that does
// not open, or an object that ends early or runs on, is ErrCorrupt.
// Not safe for concurrent use.
type Reader struct {
	ctx     context.Context
	backend Backend
	name    string
	aead    cipher.AEAD
	header  []byte
	lay     layout

	pos   int64 // plaintext position of the next Read
	cur   int64 // index of the chunk in plain, -1 for none
	plain []byte
	sbuf  []byte // sealed chunk

	src  io.ReadCloser // stored bytes from chunk next to the object's end
	next int64
}

// newReader takes src, positioned at the object's start, and reads the
// header from it.
func newReader(ctx context.Context, b Backend, name string, aead cipher.AEAD, size int64, src io.ReadCloser) (*Reader, error) {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(src, h); err != nil {
		return nil, truncated(err)
	}
	chunk, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	return &Reader{ctx: ctx, backend: b, name: name, aead: aead, header: h, lay: newLayout(chunk, size),
		cur: -1, plain: make([]byte, 0, chunk), sbuf: make([]byte, chunk+tagLen), src: src}, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: ends early", ErrCorrupt)
	}
	return fmt.Errorf("read stored object: %w", err)
}

// Size is the plaintext size.
func (r *Reader) Size() int64 { return r.lay.size }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.lay.size {
		if r.lay.size == 0 && r.cur < 0 {
			// An empty object still has its final chunk to check.
			if err := r.load(0); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	idx := r.pos / r.lay.chunk
	if idx != r.cur {
		if err := r.load(idx); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain[r.pos-idx*r.lay.chunk:])
	r.pos += int64(n)
	return n, nil
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.lay.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.pos = offset
	return offset, nil
}

// Close releases the backend stream.
func (r *Reader) Close() error {
	if r.src == nil {
		return nil
	}
	err := r.src.Close()
	r.src = nil
	return err
}

// load reads and opens chunk idx into r.plain.
func (r *Reader) load(idx int64) error {
	if r.src == nil || r.next != idx {
		if r.src != nil {
			r.src.Close()
		}
		r.src = nil
		src, err := r.backend.Get(r.ctx, r.name, r.lay.offset(idx), -1)
		if err != nil {
			return fmt.Errorf("read object %s: %w", r.name, err)
		}
		r.src, r.next = src, idx
	}
	final := idx == r.lay.chunks-1
	sealed := r.sbuf[:r.lay.plainLen(idx)+tagLen]
	if _, err := io.ReadFull(r.src, sealed); err != nil {
		return r.fail(truncated(err))
	}
	plain, err := r.aead.Open(r.plain[:0], chunkNonce(uint64(idx), final), sealed, r.header)
	if err != nil {
		return r.fail(fmt.Errorf("%w: chunk %d", ErrCorrupt, idx))
	}
	if final {
		var one [1]byte
		if n, _ := io.ReadFull(r.src, one[:]); n > 0 {
			return r.fail(fmt.Errorf("%w: runs on after its final chunk", ErrCorrupt))
		}
	}
	r.plain, r.cur, r.next = plain, idx, idx+1
	return nil
}

// fail forgets the stream and the chunk after an error.
func (r *Reader) fail(err error) error {
	r.Close()
	r.cur = -1
	return fmt.Errorf("object %s: %w", r.name, err)
}
