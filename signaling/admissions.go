package signaling

import (
	"context"
	"time"
)

// AdmissionAbsence bounds how long a member may have been disconnected
// and still come back without the lobby after the consult moved to another
// replica or the server restarted: enough for a failover or a restart, not
// for a guest returning much later, who waits in the lobby again.
const AdmissionAbsence = 2 * time.Minute

// admissionRedate is how often the owner stores again the admissions of
// its connected members, which dates them: a member disconnected for
// AdmissionAbsence has an admission dated at least that long ago. A third
// of the bound leaves a connected member's admission valid through a
// takeover (the lease's ttl) with time to spare.
const admissionRedate = AdmissionAbsence / 3

// Admissions stores who was admitted to a live consult, so that when the
// consult moves to another replica (its owner died) its members come back
// without the lobby. A member's admission goes when it leaves, is removed
// or times out, and lapses when it has not been stored again for
// AdmissionAbsence.
type Admissions interface {
	// Remember stores an admission, or dates it anew.
	Remember(ctx context.Context, consultID, memberID string) error
	// RememberAll stores or dates anew the admissions of several members
	// of one consult in one write.
	RememberAll(ctx context.Context, consultID string, memberIDs []string) error
	Forget(ctx context.Context, consultID, memberID string) error
	// Admitted reports whether an admission is stored and dated within
	// maxAbsence.
	Admitted(ctx context.Context, consultID, memberID string, maxAbsence time.Duration) (bool, error)
}

// rememberAdmission stores p's admission. A failure is logged: the member
// is admitted in this room, and only a takeover would send it back to the
// lobby. It runs under mu.
func (r *Room) rememberAdmission(p *Member) {
	if r.deps.Admissions == nil {
		return
	}
	ctx, cancel := r.ioContext()
	defer cancel()
	if err := r.deps.Admissions.Remember(ctx, r.ID, p.ID); err != nil {
		r.deps.Log.Error("store admission", "consult", r.ID, "member", p.ID, "err", err)
	}
}

// admissionsToRedateLocked returns, every admissionRedate, the members
// connected and admitted, whose admissions redateAdmissions stores again so
// that a stored admission says when its member was last seen; nil the
// rest of the time. It runs under mu.
func (r *Room) admissionsToRedateLocked(now time.Time) []string {
	if r.deps.Admissions == nil || now.Sub(r.admissionsDated) < admissionRedate {
		return nil
	}
	r.admissionsDated = now
	var ids []string
	for _, m := range r.members {
		if m.admitted && m.conn != nil {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// redateAdmissions stores again the admissions of members in one write,
// without mu: the room's members do not wait on the database. A member
// that left or was removed while the write ran had its admission
// forgotten, which the write may have stored again: it is forgotten once
// more. A failure is logged, as in rememberAdmission.
func (r *Room) redateAdmissions(members []string) {
	if len(members) == 0 {
		return
	}
	ctx, cancel := r.ioContext()
	err := r.deps.Admissions.RememberAll(ctx, r.ID, members)
	cancel()
	if err != nil {
		r.deps.Log.Error("store admissions again", "consult", r.ID, "members", len(members), "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range members {
		if m := r.members[id]; m == nil || !m.admitted {
			r.forgetAdmission(id)
		}
	}
}

// forgetAdmission deletes a member's stored admission. It runs under mu.
func (r *Room) forgetAdmission(memberID string) {
	if r.deps.Admissions == nil {
		return
	}
	ctx, cancel := r.ioContext()
	defer cancel()
	if err := r.deps.Admissions.Forget(ctx, r.ID, memberID); err != nil {
		r.deps.Log.Error("forget admission", "consult", r.ID, "member", memberID, "err", err)
	}
}

// admittedBefore reports whether a member that is not in the room was
// admitted to the consult by an earlier owner. It fails closed: an
// admission that cannot be read sends the member to the lobby. It runs
// under mu.
func (r *Room) admittedBefore(memberID string) bool {
	if r.deps.Admissions == nil {
		return false
	}
	ctx, cancel := r.ioContext()
	defer cancel()
	ok, err := r.deps.Admissions.Admitted(ctx, r.ID, memberID, AdmissionAbsence)
	if err != nil {
		r.deps.Log.Error("read admission; the member waits in the lobby", "consult", r.ID, "member", memberID, "err", err)
		return false
	}
	return ok
}

// auditJoin records a guest's arrival: a request in the lobby, or its
// return to the call it was admitted to.
func (r *Room) auditJoin(memberID string, readmit bool) error {
	if readmit {
		return r.audit(EventAccepted, memberID, "readmitted: admitted earlier in this consult", map[string]string{"by": "stored admission"})
	}
	return r.audit(EventRequest, memberID, "waiting in the lobby", nil)
}
