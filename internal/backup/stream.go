// Package backup is the encrypted file format of `signal backup`: a header
// naming the master key it belongs to, then the content in chunks sealed
// with AES-256-GCM under a key derived from that master key. Each chunk's
// nonce carries its number and whether it is the last, and every chunk
// authenticates the header, so a backup that was altered, reordered,
// truncated or extended is refused instead of restored in part.
package backup

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/openconsult/openconsult/keyring"
)

const (
	magic     = "OCBACKUP"
	version   = 1
	saltLen   = 32
	fpLen     = 8
	headerLen = len(magic) + 1 + fpLen + saltLen + 4
	// ChunkSize is the plaintext of one sealed chunk.
	ChunkSize = 1 << 20
	maxChunk  = 16 << 20
	purpose   = "backup v1"
)

// Errors a reader returns; each says what an operator has in hand.
var (
	ErrNotBackup = errors.New("not an OpenConsult backup (or an unsupported version)")
	ErrTruncated = errors.New("backup is truncated: it ends before its last chunk")
	ErrAltered   = errors.New("backup is damaged or was altered: a chunk fails authentication")
	ErrTrailing  = errors.New("backup has data after its last chunk")
)

// WrongKeyError says the backup belongs to another master key.
type WrongKeyError struct{ Backup, Given string }

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("backup was encrypted for master key %s, but master key %s was given", e.Backup, e.Given)
}

type sealer struct {
	aead   cipher.AEAD
	header []byte
	n      uint64
}

func newSealer(master keyring.MasterKey, header []byte) (*sealer, error) {
	salt := header[len(magic)+1+fpLen : len(magic)+1+fpLen+saltLen]
	key, err := master.DeriveKey(purpose, salt)
	if err != nil {
		return nil, err
	}
	defer clear(key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, header: header}, nil
}

func (s *sealer) nonce(last bool) []byte {
	n := make([]byte, s.aead.NonceSize())
	binary.BigEndian.PutUint64(n, s.n)
	if last {
		n[len(n)-1] = 1
	}
	return n
}

func fingerprint(m keyring.MasterKey) ([]byte, error) {
	fp, err := hex.DecodeString(m.Fingerprint())
	if err != nil || len(fp) != fpLen {
		return nil, errors.New("master key fingerprint")
	}
	return fp, nil
}

// Writer encrypts what is written to it. Close seals the last chunk; a
// backup whose Writer was not closed is refused as truncated.
type Writer struct {
	w   io.Writer
	s   *sealer
	buf []byte
	err error
}

// NewWriter writes the header to w and returns the Writer of the content.
func NewWriter(w io.Writer, master keyring.MasterKey) (*Writer, error) {
	fp, err := fingerprint(master)
	if err != nil {
		return nil, err
	}
	h := make([]byte, 0, headerLen)
	h = append(h, magic...)
	h = append(h, version)
	h = append(h, fp...)
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	h = append(h, salt...)
	h = binary.BigEndian.AppendUint32(h, ChunkSize)
	s, err := newSealer(master, h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("write backup header: %w", err)
	}
	return &Writer{w: w, s: s, buf: make([]byte, 0, ChunkSize)}, nil
}

// Write buffers p and seals each full chunk.
func (w *Writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.err != nil {
			return written, w.err
		}
		n := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		p, written = p[n:], written+n
		if len(w.buf) == ChunkSize {
			w.err = w.seal(false)
		}
	}
	return written, w.err
}

// Close seals the last chunk (possibly empty). It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = w.seal(true)
	if w.err == nil {
		w.err = errors.New("backup writer closed")
		return nil
	}
	return w.err
}

func (w *Writer) seal(last bool) error {
	rec := make([]byte, 5, 5+len(w.buf)+w.s.aead.Overhead())
	if last {
		rec[0] = 1
	}
	rec = w.s.aead.Seal(rec, w.s.nonce(last), w.buf, w.s.header)
	binary.BigEndian.PutUint32(rec[1:5], uint32(len(rec)-5))
	w.s.n++
	w.buf = w.buf[:0]
	if _, err := w.w.Write(rec); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	return nil
}

// Reader decrypts a backup. It returns io.EOF only after the last chunk
// authenticated and nothing follows it; any other end is an error.
type Reader struct {
	r    *bufio.Reader
	s    *sealer
	size int
	buf  []byte
	done bool
	err  error
}

// NewReader reads the header of a backup made for master.
func NewReader(r io.Reader, master keyring.MasterKey) (*Reader, error) {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(r, h); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrNotBackup
		}
		return nil, fmt.Errorf("read backup header: %w", err)
	}
	if !bytes.Equal(h[:len(magic)], []byte(magic)) || h[len(magic)] != version {
		return nil, ErrNotBackup
	}
	fp, err := fingerprint(master)
	if err != nil {
		return nil, err
	}
	if got := h[len(magic)+1 : len(magic)+1+fpLen]; !bytes.Equal(got, fp) {
		return nil, &WrongKeyError{Backup: hex.EncodeToString(got), Given: master.Fingerprint()}
	}
	size := int(binary.BigEndian.Uint32(h[headerLen-4:]))
	if size <= 0 || size > maxChunk {
		return nil, ErrNotBackup
	}
	s, err := newSealer(master, h)
	if err != nil {
		return nil, err
	}
	return &Reader{r: bufio.NewReader(r), s: s, size: size}, nil
}

// Read returns decrypted content.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			r.err = r.finish()
			continue
		}
		r.err = r.open()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *Reader) open() error {
	var h [5]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrTruncated
		}
		return fmt.Errorf("read backup: %w", err)
	}
	last := h[0] == 1
	n := int(binary.BigEndian.Uint32(h[1:]))
	if h[0] > 1 || n < r.s.aead.Overhead() || n > r.size+r.s.aead.Overhead() {
		return ErrAltered
	}
	ct := make([]byte, n)
	if _, err := io.ReadFull(r.r, ct); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrTruncated
		}
		return fmt.Errorf("read backup: %w", err)
	}
	pt, err := r.s.aead.Open(ct[:0], r.s.nonce(last), ct, r.s.header)
	if err != nil {
		return ErrAltered
	}
	r.s.n++
	r.buf, r.done = pt, last
	return nil
}

func (r *Reader) finish() error {
	if _, err := r.r.ReadByte(); err == nil {
		return ErrTrailing
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read backup: %w", err)
	}
	return io.EOF
}
