package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"

	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/signaling"
	"github.com/openconsult/openconsult/store"
)

// Documents is what document sharing needs.
type Documents interface {
	ShareDocument(ctx context.Context, consultID, fromID, fromName, fileName string, content io.Reader) (signaling.ChatMessage, error)
	OpenDocument(ctx context.Context, consultID, id string) (consult.OpenedDocument, error)
}

// Rooms is what document sharing needs from the live consult.
type Rooms interface {
	Admitted(consultID, memberID string) bool
	Announce(consultID string, msg signaling.ChatMessage)
}

// DocumentRecorder writes the "document shared" audit entry.
type DocumentRecorder interface {
	RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error
}

// docError answers a document request with msg, a stable English text,
// and the message of key in the request's language for the page to show.
func (s *Site) docError(w http.ResponseWriter, r *http.Request, code int, msg, key string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "message": s.text(r, key, args...)})
}

// shareDocument accepts one file from an admitted member of the consult
// and streams it to the documents service, which checks it and stores it
// encrypted; then it records it and announces it in the chat.
func (s *Site) shareDocument(w http.ResponseWriter, r *http.Request) {
	consultID := r.PathValue("id")
	p, ok, err := s.participant(r, consultID)
	if err != nil {
		s.opt.Log.Error("document identity", "consult", consultID, "err", err)
		s.docError(w, r, http.StatusInternalServerError, "internal error", "doc.internal")
		return
	}
	if !ok || !s.opt.Rooms.Admitted(consultID, p.ID) {
		s.docError(w, r, http.StatusForbidden, "only admitted members of this consult can share documents", "doc.forbidden")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, consult.MaxDocumentBytes+64<<10)
	part, err := filePart(r)
	if err != nil {
		s.docError(w, r, http.StatusBadRequest, "send one file in the form field \"file\"", "doc.field")
		return
	}
	defer part.Close()
	msg, err := s.opt.Documents.ShareDocument(r.Context(), consultID, p.ID, p.Name, part.FileName(), part)
	if err != nil {
		s.shareError(w, r, consultID, p.ID, err)
		return
	}
	if err := s.opt.DocAudit.RecordSession(r.Context(), "document.shared", consultID, p.ID, "document shared in the chat",
		map[string]string{"document": msg.File.ID, "type": msg.File.Type, "bytes": strconv.FormatInt(msg.File.Size, 10)}); err != nil {
		s.opt.Log.Error("audit document", "consult", consultID, "err", err)
		s.docError(w, r, http.StatusInternalServerError, "the document could not be recorded", "doc.record")
		return
	}
	s.opt.Rooms.Announce(consultID, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "{\"id\":%q}\n", msg.File.ID)
}

// filePart returns the multipart part of the form field "file", to be
// read as a stream: the upload is never held in memory whole.
func filePart(r *http.Request) (*multipart.Part, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, err
		}
		if part.FormName() == "file" && part.FileName() != "" {
			return part, nil
		}
		part.Close()
	}
}

// shareError answers a refused or failed upload with a stable message.
func (s *Site) shareError(w http.ResponseWriter, r *http.Request, consultID, memberID string, err error) {
	var tooBig *http.MaxBytesError
	var rate *consult.UploadRateError
	switch {
	case errors.Is(err, consult.ErrDocumentSize), errors.As(err, &tooBig):
		s.docError(w, r, http.StatusRequestEntityTooLarge, consult.ErrDocumentSize.Error(), "doc.size", "mib", consult.MaxDocumentBytes>>20)
	case errors.Is(err, consult.ErrDocumentQuota):
		s.docError(w, r, http.StatusRequestEntityTooLarge, consult.ErrDocumentQuota.Error(), "doc.quota")
	case errors.As(err, &rate):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rate.RetryAfter.Seconds()))))
		s.docError(w, r, http.StatusTooManyRequests, consult.ErrUploadRate.Error(), "doc.rate")
	case errors.Is(err, consult.ErrDocumentType):
		s.docError(w, r, http.StatusUnsupportedMediaType, err.Error(), "doc.type")
	case errors.Is(err, consult.ErrDocumentEmpty):
		s.docError(w, r, http.StatusUnsupportedMediaType, err.Error(), "doc.empty")
	case errors.Is(err, consult.ErrEnded):
		s.docError(w, r, http.StatusGone, err.Error(), "doc.ended")
	case errors.Is(err, consult.ErrBadInput):
		s.docError(w, r, http.StatusUnprocessableEntity, err.Error(), "doc.name")
	case r.Context().Err() != nil, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, multipart.ErrMessageTooLarge):
		s.docError(w, r, http.StatusBadRequest, "the upload was interrupted", "doc.interrupted")
	default:
		s.opt.Log.Error("share document", "consult", consultID, "member", memberID, "err", err)
		s.docError(w, r, http.StatusInternalServerError, "the document could not be stored", "doc.store")
	}
}

// downloadDocument serves a document to the consult's owner or an admitted
// member, as an attachment that the browser never runs as part of the site.
func (s *Site) downloadDocument(w http.ResponseWriter, r *http.Request) {
	consultID := r.PathValue("id")
	allowed, err := s.mayRead(r, consultID)
	if err != nil {
		s.internalError(w, r, "document identity", err)
		return
	}
	if !allowed {
		s.render(w, r, http.StatusForbidden, "error", errorPage{"err.notallowed.title", "err.documents.text"})
		return
	}
	doc, err := s.opt.Documents.OpenDocument(r.Context(), consultID, r.PathValue("doc"))
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if errors.Is(err, consult.ErrDocumentExpired) {
		s.render(w, r, http.StatusGone, "error", errorPage{"err.document.deleted.title", "err.document.deleted.text"})
		return
	}
	if err != nil {
		s.internalError(w, r, "open document", err)
		return
	}
	defer doc.Content.Close()
	h := w.Header()
	h.Set("Content-Type", doc.Type)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": doc.Name}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	// Byte ranges (a resumed or partial download) read only the chunks
	// they cover; a whole download streams one chunk at a time.
	http.ServeContent(w, r, "", doc.Shared, loggedReader{doc.Content, func(err error) {
		s.opt.Log.Error("read document", "consult", consultID, "document", r.PathValue("doc"), "err", err)
	}})
}

// loggedReader reports a read error, which http.ServeContent only
// answers by cutting the response short (a stored object that does not
// open, or storage that fails mid-download).
type loggedReader struct {
	io.ReadSeeker
	report func(error)
}

func (l loggedReader) Read(p []byte) (int, error) {
	n, err := l.ReadSeeker.Read(p)
	if err != nil && err != io.EOF {
		l.report(err)
	}
	return n, err
}

// mayRead: the consult's owner, also after it ended (it is part of the
// record), or a member admitted to the live consult.
func (s *Site) mayRead(r *http.Request, consultID string) (bool, error) {
	if id, ok, err := s.identity(r); err != nil {
		return false, err
	} else if ok && id.Full() {
		if _, err := s.opt.Consults.View(r.Context(), id.User.ID, consultID); err == nil {
			return true, nil
		}
	}
	p, ok, err := s.participant(r, consultID)
	if err != nil || !ok {
		return false, err
	}
	return s.opt.Rooms.Admitted(consultID, p.ID), nil
}
