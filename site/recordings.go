package site

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/consult"
	"github.com/openconsult/openconsult/objstore"
	"github.com/openconsult/openconsult/recording"
	"github.com/openconsult/openconsult/store"
)

// Recordings is what recording playback needs.
type Recordings interface {
	List(ctx context.Context, consultID string) ([]recording.Summary, error)
	OpenFile(ctx context.Context, consultID, recordingID, fileID string) (recording.OpenedFile, error)
	Delete(ctx context.Context, consultID, recordingID, by string) error
}

// auditWindow: the range requests of one view (or download) of a file by
// one account that do not start at its first byte are audited with the
// request that did, within this time.
const auditWindow = 10 * time.Minute

// viewLog remembers the views audited in the last auditWindow.
type viewLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// first reports whether key was not seen within auditWindow of now, and
// records it; call forget when the audit fails.
func (v *viewLog) first(key string, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	if at, ok := v.seen[key]; ok && now.Sub(at) < auditWindow {
		return false
	}
	if len(v.seen) > 4096 {
		for k, at := range v.seen {
			if now.Sub(at) >= auditWindow {
				delete(v.seen, k)
			}
		}
	}
	v.seen[key] = now
	return true
}

func (v *viewLog) forget(key string) {
	v.mu.Lock()
	delete(v.seen, key)
	v.mu.Unlock()
}

// mayWatch: the consult's clinician, or an account of a role the
// institution allows to watch recordings. Never a guest.
func (s *Site) mayWatch(r *http.Request, id auth.Identity, consultID string) (bool, error) {
	if slices.Contains(s.opt.RecordingRoles, id.User.Role) {
		return true, nil
	}
	if id.User.Role != "clinician" {
		return false, nil
	}
	_, err := s.opt.Consults.View(r.Context(), id.User.ID, consultID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, consult.ErrNotOwner):
		return false, nil
	}
	return false, err
}

type recordingsPage struct {
	ConsultID  string
	Recordings []recordingView
	CanDelete  bool // administrators delete recordings
}

// recordingView is a recording as the page shows it; the *Key fields
// name catalog messages.
type recordingView struct {
	ID       string
	Started  time.Time
	StateKey string
	Length   string
	Size     int64
	Deleted  bool
	Consents []recording.ConsentSummary
	Files    []fileView
}

type fileView struct {
	ID, Name, KindsKey, Length string
	Size                       int64
	Complete                   bool
}

// clock writes a length as 4:32 or 1:05:09, the same in every language.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// kindsKeys name what a file holds (recording.FileSummary.Kinds).
var kindsKeys = map[string]string{
	"audio":       "record.recording.audio",
	"video":       "record.recording.video",
	"audio+video": "record.recording.audio.video",
}

// stateKey names a recording's state, and why a partial one was cut short
// as far as a reader can act on it.
func stateKey(r recording.Summary) string {
	switch {
	case r.Deleted:
		return "record.recording.deleted"
	case r.State == store.RecordingRunning:
		return "record.recording.running"
	case r.State != store.RecordingPartial:
		return "record.recording.complete"
	case r.StopReason == "node-failed":
		return "record.recording.partial.node"
	case r.StopReason == "interrupted":
		return "record.recording.partial.interrupted"
	}
	return "record.recording.partial"
}

func recordingViews(list []recording.Summary) []recordingView {
	out := make([]recordingView, 0, len(list))
	for _, r := range list {
		v := recordingView{ID: r.ID, Started: r.Started, StateKey: stateKey(r), Length: clock(r.Duration),
			Size: r.Size, Deleted: r.Deleted, Consents: r.Consents}
		for _, f := range r.Files {
			kinds, ok := kindsKeys[f.Kinds]
			if !ok {
				kinds = "record.recording.audio.video"
			}
			v.Files = append(v.Files, fileView{ID: f.ID, Name: f.Name, KindsKey: kinds, Length: clock(f.Duration), Size: f.Size, Complete: f.Complete})
		}
		out = append(out, v)
	}
	return out
}

// recordingsList shows a consult's recordings to whoever may watch them.
func (s *Site) recordingsList(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	consultID := r.PathValue("id")
	ok, err := s.mayWatch(r, id, consultID)
	if err != nil {
		s.internalError(w, r, "recording access", err)
		return
	}
	if !ok {
		s.render(w, r, http.StatusForbidden, "error", errorPage{"err.notallowed.title", "err.recordings.text"})
		return
	}
	list, err := s.opt.Recordings.List(r.Context(), consultID)
	if err != nil {
		s.internalError(w, r, "list recordings", err)
		return
	}
	s.render(w, r, http.StatusOK, "recordings", formPage{Data: recordingsPage{ConsultID: consultID, Recordings: recordingViews(list), CanDelete: id.IsAdmin()}})
}

// recordingDelete deletes a finished recording (administrators only),
// unless its consult is under legal hold; recording.deleted is audited.
func (s *Site) recordingDelete(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	consultID, recID := r.PathValue("id"), r.PathValue("rec")
	err := s.opt.Recordings.Delete(r.Context(), consultID, recID, id.User.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case errors.Is(err, recording.ErrLegalHold):
		s.render(w, r, http.StatusConflict, "error", errorPage{"err.recording.kept.title", "err.recording.hold.text"})
	case errors.Is(err, recording.ErrRunning):
		s.render(w, r, http.StatusConflict, "error", errorPage{"err.recording.kept.title", "err.recording.running.text"})
	case errors.Is(err, recording.ErrDeleted):
		s.render(w, r, http.StatusGone, "error", errorPage{"err.recording.deleted.title", "err.recording.deleted.text"})
	case err != nil:
		s.internalError(w, r, "delete recording", err)
	default:
		http.Redirect(w, r, "/consults/"+consultID+"/recordings", http.StatusSeeOther)
	}
}

// recordingFile streams one recorded file, for the page's player or as a
// download (?download=1), with byte ranges so the player can seek. The
// view or download is audited before the first byte is sent, and no byte
// of a stored chunk that fails its authentication is ever sent.
func (s *Site) recordingFile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	consultID := r.PathValue("id")
	ok, err := s.mayWatch(r, id, consultID)
	if err != nil {
		s.internalError(w, r, "recording access", err)
		return
	}
	if !ok {
		s.render(w, r, http.StatusForbidden, "error", errorPage{"err.notallowed.title", "err.recordings.text"})
		return
	}
	f, err := s.opt.Recordings.OpenFile(r.Context(), consultID, r.PathValue("rec"), r.PathValue("file"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
		return
	case errors.Is(err, recording.ErrDeleted):
		s.render(w, r, http.StatusGone, "error", errorPage{"err.recording.deleted.title", "err.recording.deleted.text"})
		return
	case errors.Is(err, recording.ErrNoContent):
		s.render(w, r, http.StatusNotFound, "error", errorPage{"err.recording.empty.title", "err.recording.empty.text"})
		return
	case err != nil:
		s.internalError(w, r, "open recording", err)
		return
	}
	defer f.Content.Close()
	download := r.URL.Query().Get("download") == "1"
	event, disposition := audit.TypeRecordingViewed, "inline"
	if download {
		event, disposition = audit.TypeRecordingDownloaded, "attachment"
	}
	if r.Method == http.MethodGet {
		// A player's first request starts at byte 0 and is a new view;
		// the requests of its seeks, within auditWindow, belong to it.
		key := event + " " + id.User.ID + " " + f.File
		if rng := r.Header.Get("Range"); rng == "" || strings.HasPrefix(rng, "bytes=0-") {
			s.views.forget(key)
		}
		if s.views.first(key, s.opt.Now()) {
			if err := s.opt.DocAudit.RecordSession(r.Context(), event, consultID, id.User.ID, "recording "+map[bool]string{false: "viewed", true: "downloaded"}[download],
				map[string]string{"recording": f.Recording, "file": f.File}); err != nil {
				s.views.forget(key)
				s.internalError(w, r, "audit recording access", err)
				return
			}
		}
	}
	h := w.Header()
	h.Set("Content-Type", f.Type)
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": f.Name}))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	cw := &checkedWriter{ResponseWriter: w, text: func(key string) string { return s.text(r, key) }}
	var readErr error
	http.ServeContent(cw, r, "", f.Started, loggedReader{f.Content, func(err error) {
		readErr = err
		s.opt.Log.Error("read recording", "consult", consultID, "recording", f.Recording, "file", f.File, "err", err)
	}})
	cw.finish(readErr)
}

// checkedWriter holds back the status line until the first byte of the
// body, which http.ServeContent writes only after reading it: a response
// whose first read fails (a stored chunk altered or lost) is answered
// with a clear error instead. A failure further on cuts the response
// short; never is an unauthenticated byte sent.
type checkedWriter struct {
	http.ResponseWriter
	text  func(key string) string // a message in the request's language
	code  int
	wrote bool
}

func (c *checkedWriter) WriteHeader(code int) { c.code = code }

func (c *checkedWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.wrote = true
		c.ResponseWriter.WriteHeader(max(c.code, http.StatusOK))
	}
	return c.ResponseWriter.Write(b)
}

func (c *checkedWriter) finish(readErr error) {
	if c.wrote {
		return
	}
	if readErr == nil {
		c.ResponseWriter.WriteHeader(max(c.code, http.StatusOK))
		return
	}
	h := c.ResponseWriter.Header()
	for _, k := range []string{"Content-Length", "Content-Range", "Content-Disposition", "Accept-Ranges", "Last-Modified"} {
		h.Del(k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	key := "err.recording.unreadable"
	if errors.Is(readErr, objstore.ErrCorrupt) {
		key = "err.recording.damaged"
	}
	c.ResponseWriter.WriteHeader(http.StatusBadGateway)
	_, _ = c.ResponseWriter.Write([]byte(c.text(key) + "\n"))
}
