package signaling

import (
	"context"
	"fmt"
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
	// writes lists the members of each write, one write a call.
	writes [][]string
	// during, when set, runs in RememberAll before it stores, without mu.
	during func()
}

func (a *memAdmissions) Remember(_ context.Context, _, memberID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dated[memberID] = a.now()
	return nil
}

func (a *memAdmissions) RememberAll(_ context.Context, _ string, memberIDs []string) error {
	if a.during != nil {
		a.during()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.writes = append(a.writes, slices.Sorted(slices.Values(memberIDs)))
	for _, id := range memberIDs {
		a.dated[id] = a.now()
	}
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

// A room's connected and admitted members have their admissions dated
// anew in one write per admissionRedate, whatever their number, made
// without the room's lock; a member that leaves while the write runs does
// not keep its admission.
func TestRoomRedatesItsAdmissionsInOneWrite(t *testing.T) {
	for _, guests := range []int{1, 4, 12} {
		t.Run(fmt.Sprintf("%d guests", guests), func(t *testing.T) {
			f := newFixture()
			adm := &memAdmissions{now: func() time.Time { return f.clock }, dated: map[string]time.Time{}}
			f.hub.deps.Admissions = adm
			r, host, _ := f.join(t, "u_doc", true)
			want := []string{"u_doc"}
			for i := range guests {
				_, g, _ := f.join(t, fmt.Sprintf("g_%02d", i), false)
				r.Handle(host, msg("admit", "member", g.ID))
				want = append(want, g.ID)
			}
			// Neither a guest in the lobby nor a disconnected one is seen.
			f.join(t, "g_lobby", false)
			_, gone, gc := f.join(t, "g_gone", false)
			r.Handle(host, msg("admit", "member", gone.ID))
			f.hub.Disconnected(r, gone, gc)
			slices.Sort(want)

			adm.mu.Lock()
			adm.writes = nil
			adm.mu.Unlock()
			var leaver *Member
			adm.during = func() {
				if !r.mu.TryLock() {
					t.Error("admissions written under the room's lock")
					return
				}
				r.mu.Unlock()
				if leaver != nil {
					r.Handle(leaver, msg("leave"))
				}
			}
			// Three periods: a write each, on the first sweep and every
			// admissionRedate after.
			for range 3 * admissionRedate / time.Second {
				f.advance(r, time.Second)
			}
			adm.mu.Lock()
			writes := adm.writes
			adm.mu.Unlock()
			if len(writes) != 3 {
				t.Fatalf("%d writes in 3 periods, want 3: %v", len(writes), writes)
			}
			for _, w := range writes {
				if !slices.Equal(w, want) {
					t.Fatalf("a write stored %v, want %v", w, want)
				}
			}

			// A guest leaves while the write runs: its admission goes.
			leaver = r.members["g_00"]
			for range admissionRedate / time.Second {
				f.advance(r, time.Second)
			}
			if ok, _ := adm.Admitted(context.Background(), r.ID, "g_00", AdmissionAbsence); ok {
				t.Fatal("a guest that left while its admission was written again keeps it")
			}
			if ok, _ := adm.Admitted(context.Background(), r.ID, "u_doc", AdmissionAbsence); !ok {
				t.Fatal("the host's admission went with the guest's")
			}
		})
	}
}
