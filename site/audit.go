package site

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
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
	Entries          []auditRow
	Since, Until     string
	User, Type, Room string
	Report           audit.Report
	ReportText       string // the report in the reader's language
	Key              string
	Limit            int
}

// auditRow is an entry as the page shows it: accounts by username, the id
// kept in the title for the exported log's readers.
type auditRow struct {
	audit.Entry
	Requester auditName
	Fields    []auditField
}

type auditName struct{ Name, ID string } // Name is "" when no account has the id

type auditField struct {
	Key   string
	Value auditName
}

// auditRows names the accounts the entries mention: the requester and
// every field whose value is an account's id.
func auditRows(entries []audit.Entry, names map[string]string) []auditRow {
	name := func(id string) auditName { return auditName{Name: names[id], ID: id} }
	rows := make([]auditRow, len(entries))
	for i, e := range entries {
		rows[i] = auditRow{Entry: e, Requester: name(e.Requester)}
		keys := slices.Sorted(maps.Keys(e.Fields))
		for _, k := range keys {
			rows[i].Fields = append(rows[i].Fields, auditField{Key: k, Value: name(e.Fields[k])})
		}
	}
	return rows
}

// usernames maps the accounts' ids to their names, "Ana Ruiz (ana.ruiz)"
// or the username alone, and usernames to ids, for an administrator.
func (s *Site) usernames(ctx context.Context, id auth.Identity) (byID, byName map[string]string, err error) {
	users, err := s.opt.Accounts.Users(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	byID, byName = map[string]string{}, map[string]string{}
	for _, u := range users {
		byID[u.ID], byName[u.Username] = u.Username, u.ID
		if u.DisplayName != "" {
			byID[u.ID] = u.DisplayName + " (" + u.Username + ")"
		}
	}
	return byID, byName, nil
}

func (s *Site) auditList(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	q := r.URL.Query()
	f, problem := auditFilter(q.Get)
	byID, byName, err := s.usernames(r.Context(), id)
	if err != nil {
		s.internalError(w, r, "list users", err)
		return
	}
	if userID, ok := byName[f.User]; ok {
		f.User = userID // the filter takes a username as well as an id
	}
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
	s.render(w, r, http.StatusOK, "audit", formPage{Error: problem, Data: auditPage{Entries: auditRows(entries, byID), Since: q.Get("since"), Until: q.Get("until"),
		User: q.Get("user"), Type: f.Type, Room: f.Room, Report: rep, ReportText: reportText(s.lang(r), rep), Key: s.opt.Audit.VerifierKey(), Limit: auditPageLimit}})
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
