package signaling

import (
	"reflect"
	"testing"
)

// TestLobbyGuestToldWhetherClinicianConnected: the waiting room may say
// the clinician has been told only while a clinician is connected.
func TestLobbyGuestToldWhetherClinicianConnected(t *testing.T) {
	f := newFixture()
	_, guest, gtab := f.join(t, "g_pat", false)
	if w := gtab.last("waiting"); w == nil || w["clinician"] != false {
		t.Fatalf("alone in the lobby: %v, want clinician false", w)
	}
	r, doc, dtab := f.join(t, "u_doc", true)
	if w := gtab.last("waiting"); w == nil || w["clinician"] != true {
		t.Fatalf("clinician connected: %v, want clinician true", w)
	}
	f.hub.Disconnected(r, doc, dtab)
	if w := gtab.last("waiting"); w == nil || w["clinician"] != false {
		t.Fatalf("clinician's tab closed: %v, want clinician false", w)
	}
	// A guest reconnecting to the lobby is told again.
	again := &tab{}
	if _, _, err := f.hub.Join("c_1", Participant{ID: guest.ID, Name: guest.Name, Kind: "guest"}, again); err != nil {
		t.Fatal(err)
	}
	if w := again.last("waiting"); w == nil || w["clinician"] != false {
		t.Fatalf("resumed lobby guest: %v, want clinician false", w)
	}
	// An admitted member is not sent the lobby's status.
	_, _, dtab2 := f.join(t, "u_doc", true)
	if w := dtab2.last("waiting"); w != nil {
		t.Fatalf("clinician received %v", w)
	}
}

func TestHubWaitingCountsOnlyLobbyMembers(t *testing.T) {
	f := newFixture()
	if got := f.hub.Waiting(); len(got) != 0 {
		t.Fatalf("no room: %v", got)
	}
	r, _, _ := f.join(t, "u_doc", true)
	f.join(t, "g_a", false)
	_, _, _ = f.join(t, "g_b", false)
	if got := f.hub.Waiting(); !reflect.DeepEqual(got, map[string]int{"c_1": 2}) {
		t.Fatalf("two waiting: %v", got)
	}
	host := r.members["u_doc"]
	r.Handle(host, msg("admit", "member", "g_a"))
	if got := f.hub.Waiting(); !reflect.DeepEqual(got, map[string]int{"c_1": 1}) {
		t.Fatalf("one admitted: %v", got)
	}
	r.Handle(host, msg("deny", "member", "g_b"))
	if got := f.hub.Waiting(); len(got) != 0 {
		t.Fatalf("lobby empty: %v", got)
	}
}
