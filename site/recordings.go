package site

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
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

// recordingView is a recording as the page shows it.
type recordingView struct {
	ID       string
	Started  time.Time
	State    string
	Reason   string
	Length   string
	Size     string
	Deleted  bool
	Consents []recording.ConsentSummary
	Files    []fileView
}

type fileView struct {
	ID, Name, Kinds, Length, Size string
	Complete                      bool
}

func length(d time.Duration) string { return d.Round(time.Second).String() }

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 0, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func recordingViews(list []recording.Summary) []recordingView {
	out := make([]recordingView, 0, len(list))
	for _, r := range list {
		v := recordingView{ID: r.ID, Started: r.Started, State: r.State, Reason: r.StopReason, Length: length(r.Duration),
			Size: byteSize(r.Size), Deleted: r.Deleted, Consents: r.Consents}
		for _, f := range r.Files {
			name := f.Name
			if name == "" {
				name = "a member"
			}
			v.Files = append(v.Files, fileView{ID: f.ID, Name: name, Kinds: f.Kinds, Length: length(f.Duration), Size: byteSize(f.Size), Complete: f.Complete})
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
		s.render(w, r, http.StatusForbidden, "error", errorPage{"Not allowed", "Only the consult's clinician and the roles the institution allows can watch its recordings."})
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
	case errors.Is(err, recording.ErrLegalHold), errors.Is(err, recording.ErrRunning):
		s.render(w, r, http.StatusConflict, "error", errorPage{"Recording kept", err.Error()})
	case errors.Is(err, recording.ErrDeleted):
		s.render(w, r, http.StatusGone, "error", errorPage{"Recording deleted", "This recording was deleted already."})
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
		s.render(w, r, http.StatusForbidden, "error", errorPage{"Not allowed", "Only the consult's clinician and the roles the institution allows can watch its recordings."})
		return
	}
	f, err := s.opt.Recordings.OpenFile(r.Context(), consultID, r.PathValue("rec"), r.PathValue("file"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
		return
	case errors.Is(err, recording.ErrDeleted):
		s.render(w, r, http.StatusGone, "error", errorPage{"Recording deleted", "This recording was deleted."})
		return
	case errors.Is(err, recording.ErrNoContent):
		s.render(w, r, http.StatusNotFound, "error", errorPage{"Nothing recorded", "Nothing of this recording was stored."})
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
	cw := &checkedWriter{ResponseWriter: w}
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
	msg := "The recording could not be read from storage. Please try again later.\n"
	if errors.Is(readErr, objstore.ErrCorrupt) {
		msg = "The stored recording is damaged: a part of it does not match what was recorded, so it is not played.\n"
	}
	c.ResponseWriter.WriteHeader(http.StatusBadGateway)
	_, _ = c.ResponseWriter.Write([]byte(msg))
}
