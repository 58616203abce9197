package site

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/auth"
	"github.com/openconsult/openconsult/store"
)

// LegalHolds places consults under legal hold: retention never deletes
// their documents.
type LegalHolds interface {
	SetLegalHold(ctx context.Context, consultID string, hold bool) (changed bool, err error)
}

// legalHoldEvents are the audit events of a hold set or cleared.
var legalHoldEvents = map[string]struct {
	hold           bool
	event, message string
}{
	"set":   {true, audit.TypeLegalHoldSet, "consult placed under legal hold"},
	"clear": {false, audit.TypeLegalHoldCleared, "legal hold of the consult lifted"},
}

// legalHold sets or clears a consult's legal hold (form fields consult
// and hold=set|clear), audits a change, and shows the consult's audit
// entries.
func (s *Site) legalHold(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if !s.readForm(w, r) {
		return
	}
	consultID := r.PostForm.Get("consult")
	action, ok := legalHoldEvents[r.PostForm.Get("hold")]
	if consultID == "" || !ok {
		s.render(w, r, http.StatusUnprocessableEntity, "error", errorPage{"err.hold.title", "err.hold.text"})
		return
	}
	changed, err := s.opt.LegalHolds.SetLegalHold(r.Context(), consultID, action.hold)
	if errors.Is(err, store.ErrNotFound) {
		s.render(w, r, http.StatusNotFound, "error", errorPage{"err.noconsult.title", "err.noconsult.text"})
		return
	}
	if err != nil {
		s.internalError(w, r, "legal hold", err)
		return
	}
	if changed {
		if err := s.opt.DocAudit.RecordSession(r.Context(), action.event, consultID, id.User.ID, action.message, nil); err != nil {
			s.internalError(w, r, "audit legal hold", err)
			return
		}
	}
	http.Redirect(w, r, "/admin/audit?"+url.Values{"room": {consultID}, "type": {"consult.legal_hold."}}.Encode(), http.StatusSeeOther)
}
