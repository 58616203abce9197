package signaling

import (
	"testing"
	"time"
)

// advance moves the fixture's clock under the room's lock (media link
// goroutines read it) and runs the hub's sweep.
func (f *fixture) advance(r *Room, d time.Duration) {
	r.mu.Lock()
	f.clock = f.clock.Add(d)
	r.mu.Unlock()
	f.hub.sweep()
}

func routeTo(tb *tab) any {
	if m := tb.last("route"); m != nil {
		return m["route"]
	}
	return nil
}

// A consult that shrinks below the members that moved it to the node goes
// back to peer to peer after SFUReturnAfter, not at a brief dip; members
// keep their node session until they leave it, and a new third member
// moves the consult onto the node again.
func TestShrunkConsultReturnsToPeers(t *testing.T) {
	f := newFixture()
	f.hub.deps.Media = newSFU(t, 0)
	f.hub.deps.SFUReturnAfter = 10 * time.Second
	r, hm, host := f.join(t, "u_doc", true)
	_, pm, ptab := f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	_, im, _ := f.join(t, "g_int", false)
	r.Handle(hm, msg("admit", "member", "g_int"))
	if routeTo(host) != RouteSFU || routeTo(ptab) != RouteSFU {
		t.Fatal("three members did not move the consult to the node")
	}
	r.Handle(pm, msg("sfu-join"))
	if code := errCode(ptab); code != "" {
		t.Fatalf("sfu-join: %s", code)
	}

	// A brief dip: the interpreter drops and is back within the delay.
	r.Handle(im, msg("leave"))
	f.advance(r, 0)
	f.advance(r, 6*time.Second)
	_, im, _ = f.join(t, "g_int", false)
	r.Handle(hm, msg("admit", "member", "g_int"))
	f.advance(r, 20*time.Second)
	if routeTo(ptab) != RouteSFU {
		t.Fatal("a brief dip moved the consult back to peer to peer")
	}

	// The interpreter leaves for good.
	r.Handle(im, msg("leave"))
	f.advance(r, 0)
	f.advance(r, 9*time.Second)
	if routeTo(ptab) != RouteSFU {
		t.Fatal("the consult moved back before the delay")
	}
	f.advance(r, 2*time.Second)
	for name, tb := range map[string]*tab{"host": host, "patient": ptab} {
		if routeTo(tb) != RouteP2P {
			t.Fatalf("%s was not moved back: %v", name, tb.last("route"))
		}
	}

	candidate := map[string]any{"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host", "sdpMid": "0"}
	tests := []struct {
		name string
		from *Member
		raw  []byte
		want string
	}{
		{"a member with a node session still reaches it", pm, msg("candidate", "to", SFUPeer, "candidate", candidate), ""},
		{"a member without one cannot start one", hm, msg("sfu-join"), "not-routed"},
		{"leaving the node", pm, msg("sfu-leave"), ""},
		{"leaving it twice", pm, msg("sfu-leave"), "no-member"},
		{"the node after leaving it", pm, msg("candidate", "to", SFUPeer, "candidate", candidate), "not-routed"},
		{"direct signaling", pm, msg("offer", "to", "u_doc", "sdp", sdp), ""},
	}
	for _, tt := range tests {
		host.take()
		ptab.take()
		r.Handle(tt.from, tt.raw)
		tb := ptab
		if tt.from == hm {
			tb = host
		}
		if code := errCode(tb); code != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, code, tt.want)
		}
	}

	// A new third member moves the consult to the node again.
	_, _, again := f.join(t, "g_fam", false)
	r.Handle(hm, msg("admit", "member", "g_fam"))
	if routeTo(host) != RouteSFU || routeTo(ptab) != RouteSFU {
		t.Fatal("a third member did not move the consult back to the node")
	}
	if a := again.last("admitted"); a == nil || a["route"] != RouteSFU {
		t.Fatalf("the new member was not admitted onto the node: %v", a)
	}
}

// With SFUReturnAfter zero a consult stays on the node until it ends.
func TestConsultStaysOnTheNodeWithoutReturnDelay(t *testing.T) {
	f := newFixture()
	f.hub.deps.Media = newSFU(t, 0)
	r, hm, host := f.join(t, "u_doc", true)
	f.join(t, "g_pat", false)
	r.Handle(hm, msg("admit", "member", "g_pat"))
	_, im, _ := f.join(t, "g_int", false)
	r.Handle(hm, msg("admit", "member", "g_int"))
	r.Handle(im, msg("leave"))
	f.advance(r, 0)
	f.advance(r, time.Hour)
	if routeTo(host) != RouteSFU {
		t.Fatal("the consult left the node although returning is off")
	}
}
