package consult

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openconsult/openconsult/internal/ids"
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
)

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

// ShareDocument checks, seals and stores a document shared by an admitted
// member, with the chat message that announces it, and returns that
// message for the room.
func (s *Service) ShareDocument(ctx context.Context, consultID, fromID, fromName, fileName string, data []byte) (signaling.ChatMessage, error) {
	if err := checkVisible("file name", fileName); err != nil {
		return signaling.ChatMessage{}, err
	}
	if len(data) == 0 {
		return signaling.ChatMessage{}, ErrDocumentEmpty
	}
	if len(data) > MaxDocumentBytes {
		return signaling.ChatMessage{}, ErrDocumentSize
	}
	ctype := http.DetectContentType(data)
	if _, ok := DocumentTypes[ctype]; !ok {
		return signaling.ChatMessage{}, ErrDocumentType
	}
	if _, err := s.Active(ctx, consultID); err != nil {
		return signaling.ChatMessage{}, err
	}
	id, err := ids.New("d")
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	name := cleanFileName(fileName)
	nameEnc, err := s.Sealer.SealString(name, docNameAAD(id))
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	dataEnc, err := s.Sealer.SealString(string(data), docDataAAD(id))
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	text := "shared " + name
	now := s.Now().UTC().Truncate(time.Millisecond)
	doc := store.Document{ID: id, ConsultID: consultID, MemberID: fromID, NameEnc: nameEnc, ContentType: ctype, Size: int64(len(data)), DataEnc: dataEnc, CreatedAt: now}
	row, err := s.Store.ShareDocument(ctx, doc, func(seq int64) (store.ChatRow, error) {
		r, err := s.sealChat(consultID, seq, fromID, fromName, text, now)
		r.DocumentID = id
		return r, err
	})
	if err != nil {
		return signaling.ChatMessage{}, err
	}
	seq := row.Seq
	s.Log.Info("document shared", "consult", consultID, "member", fromID, "document", id, "type", ctype, "bytes", len(data))
	return signaling.ChatMessage{Seq: seq, From: fromID, Name: fromName, Text: text, At: now,
		File: &signaling.FileInfo{ID: id, Name: name, Type: ctype, Size: int64(len(data))}}, nil
}

// OpenDocument returns a shared document's name, type and content.
func (s *Service) OpenDocument(ctx context.Context, consultID, id string) (name, ctype string, data []byte, err error) {
	d, err := s.Store.DocumentByID(ctx, consultID, id)
	if err != nil {
		return "", "", nil, err
	}
	if name, err = s.Sealer.UnsealString(d.NameEnc, docNameAAD(d.ID)); err != nil {
		return "", "", nil, fmt.Errorf("unseal document %s: %w", d.ID, err)
	}
	content, err := s.Sealer.UnsealString(d.DataEnc, docDataAAD(d.ID))
	if err != nil {
		return "", "", nil, fmt.Errorf("unseal document %s: %w", d.ID, err)
	}
	return name, d.ContentType, []byte(content), nil
}
