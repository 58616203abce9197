package consult

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openconsult/openconsult/internal/ids"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// MaxDocumentBytes bounds a shared document: photos of a rash or a letter,
// not imaging studies.
const MaxDocumentBytes = 10 << 20

// DocumentTypes are the content types that may be shared, as sniffed from
// the bytes (never as the browser claimed): documents and photos that
// browsers display safely.
var DocumentTypes = map[string]string{
	"application/pdf": ".pdf",
	"image/jpeg":      ".jpg",
	"image/png":       ".png",
	"image/webp":      ".webp",
	"image/gif":       ".gif",
}

// Errors of sharing.
var (
	ErrDocumentType  = errors.New("only PDF documents and JPEG, PNG, WebP or GIF photos can be shared")
	ErrDocumentSize  = fmt.Errorf("documents are limited to %d MiB", MaxDocumentBytes>>20)
	ErrDocumentEmpty = errors.New("the file is empty")
	ErrDocumentQuota = errors.New("this consult holds as many documents as it may: no more can be shared in it")
)

// DocumentLimits bound the documents of one consult and how fast a member
// shares them.
type DocumentLimits struct {
	Files            int   // documents per consult
	Bytes            int64 // their total size
	UploadsPerMinute int   // per member, with a burst of as many
}

// DefaultDocumentLimits: 50 files and 200 MiB per consult, 10 uploads per
// member and minute.
var DefaultDocumentLimits = DocumentLimits{Files: 50, Bytes: 200 << 20, UploadsPerMinute: 10}

// Objects stores document content encrypted (objstore.Store).
type Objects interface {
	Put(ctx context.Context, name string, r io.Reader) (objstore.Object, error)
	Open(ctx context.Context, o objstore.Object) (*objstore.Reader, error)
	Delete(ctx context.Context, name string) error
}

// OpenedDocument is a shared document being read; the caller closes
// Content.
type OpenedDocument struct {
	Name    string
	Type    string
	Size    int64
	Shared  time.Time
	Content io.ReadSeekCloser
}

func docNameAAD(id string) []byte { return []byte("documents.name:" + id) }
func docDataAAD(id string) []byte { return []byte("documents.data:" + id) }

// cleanFileName keeps a display name safe to show and to offer as a
// download name.
func cleanFileName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	var b strings.Builder
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`"/\:*?<>|`, r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	name = strings.TrimSpace(b.String())
	for len(name) > 120 || !utf8.ValidString(name) {
		name = name[:len(name)-1]
	}
	if name == "" || name == "." {
		name = "document"
	}
	return name
}

func (s *Service) quota() store.DocumentQuota {
	l := s.Documents
	if l == (DocumentLimits{}) {
		l = DefaultDocumentLimits
	}
	return store.DocumentQuota{Files: l.Files, Bytes: l.Bytes}
}

// errTooLarge ends a stream that runs past its allowance.
var errTooLarge = errors.New("document larger than allowed")

// capped yields r's bytes and fails with errTooLarge past left.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

// ShareDocument checks a document shared by an admitted member (rate,
// type, size, the consult's quota), streams it encrypted into the object
// store, stores its row with the chat message that announces it, and
// returns that message for the room. Nothing is kept of a document that
// fails a check.
func (s *Service) ShareDocument(ctx context.Context, consultID, fromID, fromName, fileName string, content io.Reader) (signaling.ChatMessage, error) {
	if err := checkVisible("file name", fileName); err != nil {
		return signaling.ChatMessage{}, err
	}
	if s.Uploads != nil {
		if err := s.Uploads.Allow(consultID, fromID, s.Now()); err != nil {
			return signaling.ChatMessage{}, err
		}
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(content, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return signaling.ChatMessage{}, fmt.Errorf("read document: %w", err)
	}
	if n == 0 {
		return signaling.ChatMessage{}, ErrDocumentEmpty
	}
	head = head[:n]
	ctype := http.DetectContentType(head)
	if _, ok := DocumentTypes[ctype]; !ok {
		return signaling.ChatMessage{}, ErrDocumentType
	}
	if _, err := s.Active(ctx, consultID); err != nil {
		return signaling.ChatMessage{}, err
	}
	obj, err := s.storeContent(ctx, consultID, io.MultiReader(bytes.NewReader(head), content))
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	msg, err := s.recordDocument(ctx, consultID, fromID, fromName, fileName, ctype, obj)
	if err != nil {
		s.dropObject(obj.Name)
		return signaling.ChatMessage{}, err
	}
	s.Log.Info("document shared", "consult", consultID, "member", fromID, "document", msg.File.ID, "type", ctype, "bytes", obj.Size)
	return msg, nil
}

// storeContent streams content into a new object, no larger than one
// document may be and than what is left of the consult's quota.
func (s *Service) storeContent(ctx context.Context, consultID string, content io.Reader) (objstore.Object, error) {
	q := s.quota()
	files, used, err := s.Store.DocumentUsage(ctx, consultID)
	if err != nil {
		return objstore.Object{}, err
	}
	allowed, errOver := int64(MaxDocumentBytes), ErrDocumentSize
	if q.Bytes > 0 && q.Bytes-used < allowed {
		allowed, errOver = q.Bytes-used, ErrDocumentQuota
	}
	if q.Files > 0 && files >= q.Files || allowed <= 0 {
		return objstore.Object{}, ErrDocumentQuota
	}
	name, err := ids.New("o")
	if err != nil {
		return objstore.Object{}, err
	}
	obj, err := s.Objects.Put(ctx, "documents/"+name, &capped{r: content, left: allowed})
	switch {
	case errors.Is(err, errTooLarge):
		return objstore.Object{}, errOver
	case err != nil:
		return objstore.Object{}, fmt.Errorf("store document: %w", err)
	case obj.Size == 0:
		s.dropObject(obj.Name)
		return objstore.Object{}, ErrDocumentEmpty
	}
	return obj, nil
}

// recordDocument stores the row of a stored object and its chat message.
func (s *Service) recordDocument(ctx context.Context, consultID, fromID, fromName, fileName, ctype string, obj objstore.Object) (signaling.ChatMessage, error) {
	id, err := ids.New("d")
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	name := cleanFileName(fileName)
	nameEnc, err := s.Sealer.SealString(name, docNameAAD(id))
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	text := "shared " + name
	now := s.Now().UTC().Truncate(time.Millisecond)
	doc := store.Document{ID: id, ConsultID: consultID, MemberID: fromID, NameEnc: nameEnc, ContentType: ctype, Size: obj.Size,
		Object: obj.Name, KeyEnc: obj.SealedKey, CreatedAt: now}
	row, err := s.Store.ShareDocument(ctx, doc, s.quota(), func(seq int64) (store.ChatRow, error) {
		r, err := s.sealChat(consultID, seq, fromID, fromName, text, now)
		r.DocumentID = id
		return r, err
	})
	if errors.Is(err, store.ErrQuota) {
		return signaling.ChatMessage{}, ErrDocumentQuota
	}
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	seq := row.Seq
	return signaling.ChatMessage{Seq: seq, From: fromID, Name: fromName, Text: text, At: now,
		File: &signaling.FileInfo{ID: id, Name: name, Type: ctype, Size: obj.Size}}, nil
}

// dropObject deletes an object no row will name, even when the request
// that stored it was cancelled.
func (s *Service) dropObject(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Objects.Delete(ctx, name); err != nil {
		s.Log.Error("delete unused document object", "object", name, "err", err)
	}
}

// OpenDocument opens a shared document for reading.
func (s *Service) OpenDocument(ctx context.Context, consultID, id string) (OpenedDocument, error) {
	d, err := s.Store.DocumentByID(ctx, consultID, id)
	if err != nil {
		return OpenedDocument{}, err
	}
	if !d.ExpiredAt.IsZero() {
		return OpenedDocument{}, ErrDocumentExpired
	}
	name, err := s.Sealer.UnsealString(d.NameEnc, docNameAAD(d.ID))
	if err != nil {
		return OpenedDocument{}, fmt.Errorf("unseal document %s: %w", d.ID, err)
	}
	out := OpenedDocument{Name: name, Type: d.ContentType, Size: d.Size, Shared: d.CreatedAt}
	if d.KeyEnc == nil { // not moved into the object store yet
		content, err := s.Sealer.UnsealString(d.DataEnc, docDataAAD(d.ID))
		if err != nil {
			return OpenedDocument{}, fmt.Errorf("unseal document %s: %w", d.ID, err)
		}
		out.Content = nopCloser{strings.NewReader(content)}
		return out, nil
	}
	r, err := s.Objects.Open(ctx, objstore.Object{Name: d.Object, SealedKey: d.KeyEnc, Size: d.Size})
	if err != nil {
		return OpenedDocument{}, fmt.Errorf("open document %s: %w", d.ID, err)
	}
	out.Content = r
	return out, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// moveBatch is how many documents MoveDocuments holds in memory at once.
const moveBatch = 4

// MoveDocuments moves the content of documents still sealed in the
// database into the object store, and returns how many it moved. Each
// one goes to a fresh object, then its row names that object in one
// update that only applies while the row is unmoved: after a crash the
// next run moves what is left (an object stored before the crash and
// never named stays unused), and two processes moving at once cannot
// both win; the loser deletes its copy.
func (s *Service) MoveDocuments(ctx context.Context) (int, error) {
	moved := 0
	for {
		docs, err := s.Store.DocumentsToMove(ctx, moveBatch)
		if err != nil || len(docs) == 0 {
			return moved, err
		}
		for _, d := range docs {
			ok, err := s.moveDocument(ctx, d)
			if err != nil {
				return moved, err
			}
			if ok {
				moved++
			}
		}
	}
}

func (s *Service) moveDocument(ctx context.Context, d store.Document) (bool, error) {
	content, err := s.Sealer.UnsealString(d.DataEnc, docDataAAD(d.ID))
	if err != nil {
		return false, fmt.Errorf("move document %s: %w", d.ID, err)
	}
	name, err := ids.New("o")
	if err != nil {
		return false, err
	}
	obj, err := s.Objects.Put(ctx, "documents/"+name, strings.NewReader(content))
	if err != nil {
		return false, fmt.Errorf("move document %s: %w", d.ID, err)
	}
	if obj.Size != d.Size {
		s.dropObject(obj.Name)
		return false, fmt.Errorf("move document %s: %d bytes stored, the row says %d", d.ID, obj.Size, d.Size)
	}
	ok, err := s.Store.MoveDocument(ctx, d.ID, obj.Name, obj.SealedKey)
	if err != nil || !ok {
		s.dropObject(obj.Name)
	}
	return ok, err
}
