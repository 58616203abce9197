package signaling

import "context"

// Admissions stores who was admitted to a live consult, so that when the
// consult moves to another replica (its owner died) its members come back
// without the lobby. A member's admission goes when it leaves, is removed
// or times out.
type Admissions interface {
	Remember(ctx context.Context, consultID, memberID string) error
	Forget(ctx context.Context, consultID, memberID string) error
	Admitted(ctx context.Context, consultID, memberID string) (bool, error)
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
	ok, err := r.deps.Admissions.Admitted(ctx, r.ID, memberID)
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
