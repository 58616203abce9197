package site

import (
	"testing"

	"github.com/openconsult/openconsult/audit"
)

func TestAuditRowsNameAccountsByUsername(t *testing.T) {
	names := map[string]string{alice.ID: alice.Username, admin.ID: admin.Username}
	rows := auditRows([]audit.Entry{
		{Seq: 1, Requester: admin.ID, Fields: map[string]string{"user": alice.ID, "role": "clinician"}},
		{Seq: 2, Requester: "g-guest"},
	}, names)
	if got := rows[0].Requester; got != (auditName{Name: "chief", ID: admin.ID}) {
		t.Fatalf("requester %+v", got)
	}
	want := []auditField{{"role", auditName{ID: "clinician"}}, {"user", auditName{Name: "alice", ID: alice.ID}}}
	if len(rows[0].Fields) != 2 || rows[0].Fields[0] != want[0] || rows[0].Fields[1] != want[1] {
		t.Fatalf("fields %+v, want %+v", rows[0].Fields, want)
	}
	if got := rows[1].Requester; got != (auditName{ID: "g-guest"}) {
		t.Fatalf("a guest's id is shown as it is: %+v", got)
	}
}
