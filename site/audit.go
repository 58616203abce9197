package site

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/web/i18n"
)

// AuditLog is what the administrators' audit page needs.
type AuditLog interface {
	Entries(ctx context.Context, f audit.Filter, limit int) ([]audit.Entry, error)
	Export(ctx context.Context, w io.Writer, f audit.Filter, format, requester string) error
	Verify(ctx context.Context) (audit.Report, error)
	VerifierKey() string
}

const auditPageLimit = 200

// auditFilter reads the filter fields of the audit page's forms.
// The problem is a catalog key.
func auditFilter(get func(string) string) (audit.Filter, string) {
	var f audit.Filter
	var problem string
	day := func(name string, end bool) time.Time {
		v := get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			problem = "audit.dates"
			return time.Time{}
		}
		if end {
			t = t.AddDate(0, 0, 1) // the whole day is included
		}
		return t
	}
	f.Since, f.Until = day("since", false), day("until", true)
	f.User, f.Type, f.Room = get("user"), get("type"), get("room")
	return f, problem
}

type auditPage struct {
	Entries          []audit.Entry
	Since, Until     string
	User, Type, Room string
	Report           audit.Report
	ReportText       string // the report in the reader's language
	Key              string
	Limit            int
}

func (s *Site) auditList(w http.ResponseWriter, r *http.Request, _ auth.Identity) {
	q := r.URL.Query()
	f, problem := auditFilter(q.Get)
	entries, err := s.opt.Audit.Entries(r.Context(), f, auditPageLimit)
	if err != nil {
		s.internalError(w, r, "audit entries", err)
		return
	}
	rep, err := s.opt.Audit.Verify(r.Context())
	if err != nil {
		s.internalError(w, r, "audit verify", err)
		return
	}
	if problem != "" {
		problem = s.text(r, problem)
	}
	s.render(w, r, http.StatusOK, "audit", formPage{Error: problem, Data: auditPage{Entries: entries, Since: q.Get("since"), Until: q.Get("until"),
		User: f.User, Type: f.Type, Room: f.Room, Report: rep, ReportText: reportText(s.lang(r), rep), Key: s.opt.Audit.VerifierKey(), Limit: auditPageLimit}})
}

// reportText says what the verification of the log found, in l.
func reportText(l *i18n.Lang, rep audit.Report) string {
	if !rep.OK {
		return l.T("audit.report.broken", "problem", rep.Problem)
	}
	text := l.T("audit.report.ok", "count", rep.Entries, "checkpoints", rep.Checkpoints, "verified", rep.Verified)
	if rep.ExternalFrom != "" {
		text += " " + l.T("audit.report.external", "from", rep.ExternalFrom, "covered", rep.External)
	}
	if rep.Entries > rep.Verified {
		text += " " + l.T("audit.report.uncovered", "count", rep.Entries-rep.Verified)
	}
	return text
}

// auditExport downloads the filtered log; the export records itself in the
// log before any byte is sent.
func (s *Site) auditExport(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	f, problem := auditFilter(r.PostForm.Get)
	format := r.PostForm.Get("format")
	if problem != "" || (format != "json" && format != "csv") {
		s.render(w, r, http.StatusUnprocessableEntity, "error", errorPage{"err.export.title", "err.export.text"})
		return
	}
	w.Header().Set("Content-Type", map[string]string{"json": "application/json", "csv": "text/csv; charset=utf-8"}[format])
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="audit-%s.%s"`, time.Now().UTC().Format("20060102T150405Z"), format))
	w.Header().Set("Cache-Control", "no-store")
	if err := s.opt.Audit.Export(r.Context(), w, f, format, id.User.ID); err != nil {
		s.opt.Log.Error("audit export", "user", id.User.ID, "err", err)
	}
}
