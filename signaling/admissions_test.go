package signaling

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// memAdmissions stands for the stored admissions: each dated by the
// fixture's clock when stored, and valid within the absence asked for.
type memAdmissions struct {
	mu    sync.Mutex
	now   func() time.Time
	dated map[string]time.Time
}

func (a *memAdmissions) Remember(_ context.Context, _, memberID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dated[memberID] = a.now()
	return nil
}

func (a *memAdmissions) Forget(_ context.Context, _, memberID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.dated, memberID)
	return nil
}

func (a *memAdmissions) Admitted(_ context.Context, _, memberID string, maxAbsence time.Duration) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.dated[memberID]
	return ok && a.now().Sub(at) <= maxAbsence, nil
}

// A guest connected for a long call keeps its admission fresh, and comes
// back without the lobby after the server restarts; a guest that comes
// back longer than AdmissionAbsence after its connection was last seen
// waits in the lobby again, even though the consult is still live.
func TestStoredAdmissionLapsesAfterAnAbsence(t *testing.T) {
	f := newFixture()
	adm := &memAdmissions{now: func() time.Time { return f.clock }, dated: map[string]time.Time{}}
	f.hub.deps.Admissions = adm
	r, host, _ := f.join(t, "u_doc", true)
	_, guest, _ := f.join(t, "g_pat", false)
	r.Handle(host, msg("admit", "member", guest.ID))
	if !guest.admitted {
		t.Fatal("guest not admitted")
	}
	// A call of 20 minutes: the admission stays dated within the bound.
	for range 20 * 60 {
		f.advance(r, time.Second)
	}
	adm.mu.Lock()
	age := f.clock.Sub(adm.dated["g_pat"])
	adm.mu.Unlock()
	if age > admissionRedate {
		t.Fatalf("a connected guest's admission is %s old after a 20-minute call", age)
	}

	// The server restarts; the guest is back within the bound.
	restart := func() *Hub {
		deps := f.hub.deps
		return NewHub(deps)
	}
	rejoin := func(h *Hub) (*Member, *tab) {
		t.Helper()
		c := &tab{}
		_, m, err := h.Join("c_1", Participant{ID: "g_pat", Name: "Pat", Kind: "guest"}, c)
		if err != nil {
			t.Fatal(err)
		}
		return m, c
	}
	f.clock = f.clock.Add(AdmissionAbsence - admissionRedate - time.Second)
	if m, c := rejoin(restart()); !m.admitted || !slices.Contains(c.types(), "admitted") {
		t.Fatalf("the guest went back to the lobby %s after it was last seen: %v", AdmissionAbsence-time.Second, c.types())
	}
	// Much later (the restart above dated it again), the consult still
	// live: the lobby.
	f.clock = f.clock.Add(AdmissionAbsence + time.Second)
	if m, c := rejoin(restart()); m.admitted || slices.Contains(c.types(), "admitted") {
		t.Fatalf("the guest skipped the lobby %s after it was last seen: %v", AdmissionAbsence+time.Second, c.types())
	}
}
