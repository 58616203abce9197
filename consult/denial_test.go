package consult

import (
	"context"
	"errors"
	"testing"
)

// A guest who already joined holds a session for up to 12 h; withdrawing
// the link must end it, or the guest reconnects straight in.
func TestRevokedLinkEndsItsGuestSessions(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	if err := s.AddLink(ctx, "u_doc", v.ID, "interpreter"); err != nil {
		t.Fatal(err)
	}
	v, _ = s.View(ctx, "u_doc", v.ID)
	patient, g, err := s.JoinAsGuest(ctx, token(t, v, 0), "Pat Example", "")
	if err != nil {
		t.Fatal(err)
	}
	if g.LinkID != v.Links[0].ID {
		t.Fatalf("guest's link %q, want %q", g.LinkID, v.Links[0].ID)
	}
	interp, _, err := s.JoinAsGuest(ctx, token(t, v, 1), "Ina Terpreter", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeLink(ctx, "u_doc", v.ID, v.Links[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GuestSession(ctx, patient); !errors.Is(err, ErrLinkInvalid) {
		t.Fatalf("session of the withdrawn link's guest: %v", err)
	}
	if got, err := s.GuestSession(ctx, interp); err != nil || got.LinkID != v.Links[1].ID {
		t.Fatalf("session of another link's guest: %+v, %v", got, err)
	}
}

func TestDeniedGuestSessionEndsAndTheDeviceIsRefusedAtTheLimit(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	s.DenialLimit = 2
	v, _ := s.Create(ctx, "u_doc", "", false)
	other, _ := s.Create(ctx, "u_doc", "", false)
	link := token(t, v, 0)
	device, err := NewDeviceID()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sess, g, err := s.JoinAsGuest(ctx, link, "Knock Knock", device)
		if err != nil {
			t.Fatalf("join %d: %v", i+1, err)
		}
		if err := s.DenyGuest(ctx, other.ID, g.ID); err == nil {
			t.Fatal("a guest was denied through another consult")
		}
		if err := s.DenyGuest(ctx, v.ID, g.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GuestSession(ctx, sess); !errors.Is(err, ErrLinkInvalid) {
			t.Fatalf("denied guest's session: %v", err)
		}
	}
	if _, _, err := s.JoinAsGuest(ctx, link, "Knock Knock", device); !errors.Is(err, ErrDeviceRefused) {
		t.Fatalf("join after %d denials: %v", s.DenialLimit, err)
	}
	// Other devices, and the same device on another link, still join.
	fresh, _ := NewDeviceID()
	if _, _, err := s.JoinAsGuest(ctx, link, "Pat Example", fresh); err != nil {
		t.Fatalf("another device: %v", err)
	}
	if _, _, err := s.JoinAsGuest(ctx, token(t, other, 0), "Knock Knock", device); err != nil {
		t.Fatalf("the device on another consult's link: %v", err)
	}
}

func TestDefaultDenialLimitIsThree(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	device, _ := NewDeviceID()
	for i := range 3 {
		_, g, err := s.JoinAsGuest(ctx, token(t, v, 0), "Knock Knock", device)
		if err != nil {
			t.Fatalf("join %d: %v", i+1, err)
		}
		if err := s.DenyGuest(ctx, v.ID, g.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.JoinAsGuest(ctx, token(t, v, 0), "Knock Knock", device); !errors.Is(err, ErrDeviceRefused) {
		t.Fatalf("fourth join: %v", err)
	}
}

func TestFinishEndsOnceAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	v, _ := s.Create(ctx, "u_doc", "", false)
	for i := range 2 {
		if err := s.Finish(ctx, v.ID); err != nil {
			t.Fatalf("finish %d: %v", i+1, err)
		}
	}
	if err := s.CheckLink(ctx, token(t, v, 0)); !errors.Is(err, ErrLinkInvalid) {
		t.Fatalf("link after finish: %v", err)
	}
	if _, err := s.Active(ctx, v.ID); !errors.Is(err, ErrEnded) {
		t.Fatalf("consult after finish: %v", err)
	}
	if err := s.Finish(ctx, "c_nonexistent"); err == nil {
		t.Fatal("finishing a consult that does not exist succeeded")
	}
}
