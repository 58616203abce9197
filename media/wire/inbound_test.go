package wire

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

var testIDs = ExtensionIDs{MID: 1, RID: 2, RepairedRID: 3}

// packet is a header of ssrc with the given extensions (id → value).
func packet(t testing.TB, ssrc uint32, exts map[uint8]string) *rtp.Header {
	t.Helper()
	h := &rtp.Header{Version: 2, SSRC: ssrc}
	for id, v := range exts {
		if !h.Extension {
			h.Extension, h.ExtensionProfile = true, rtp.ExtensionProfileOneByte
		}
		if err := h.SetExtension(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// TestInboundRoutes: SSRCs are placed by the description's a=ssrc lines,
// else by the MID and RID extensions of their first packet; learned ones
// need no extensions after, even once their section stopped sending and
// started again; nothing is placed in a section that does not send.
func TestInboundRoutes(t *testing.T) {
	type step struct {
		describe []string // sections sending, when set: a new description
		declared map[uint32]Route
		h        *rtp.Header
		want     Route
		err      error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"declared", []step{
			{describe: []string{"0"}, declared: map[uint32]Route{10: {Mid: "0"}}, h: packet(t, 10, nil), want: Route{Mid: "0"}},
		}},
		{"declared in a section that stopped", []step{
			{describe: []string{"1"}, declared: map[uint32]Route{10: {Mid: "0"}}, h: packet(t, 10, nil), err: ErrUnknownSSRC},
		}},
		{"simulcast layers and their repairs learned", []step{
			{describe: []string{"1"}, h: packet(t, 20, map[uint8]string{1: "1", 2: "q"}), want: Route{Mid: "1", RID: "q"}},
			{h: packet(t, 21, map[uint8]string{1: "1", 3: "q"}), want: Route{Mid: "1", RID: "q", RTX: true}},
			{h: packet(t, 20, nil), want: Route{Mid: "1", RID: "q"}},
			{h: packet(t, 21, nil), want: Route{Mid: "1", RID: "q", RTX: true}},
		}},
		{"a section stopped and started again on the same SSRCs without extensions", []step{
			{describe: []string{"1"}, h: packet(t, 20, map[uint8]string{1: "1", 2: "h"}), want: Route{Mid: "1", RID: "h"}},
			{describe: []string{}, h: packet(t, 20, nil), err: ErrUnknownSSRC},
			{describe: []string{"1"}, h: packet(t, 20, nil), want: Route{Mid: "1", RID: "h"}},
		}},
		{"no MID", []step{
			{describe: []string{"1"}, h: packet(t, 30, map[uint8]string{2: "q"}), err: ErrUnknownSSRC},
		}},
		{"a MID that does not send", []step{
			{describe: []string{"1"}, h: packet(t, 30, map[uint8]string{1: "2"}), err: ErrUnknownSSRC},
		}},
		{"an SSRC that moves to another section", []step{
			{describe: []string{"1", "2"}, h: packet(t, 40, map[uint8]string{1: "1"}), want: Route{Mid: "1"}},
			{h: packet(t, 40, map[uint8]string{1: "2"}), want: Route{Mid: "2"}},
			{h: packet(t, 40, nil), want: Route{Mid: "2"}},
		}},
		{"a declaration takes a learned SSRC", []step{
			{describe: []string{"1", "2"}, h: packet(t, 50, map[uint8]string{1: "1"}), want: Route{Mid: "1"}},
			{describe: []string{"1", "2"}, declared: map[uint32]Route{50: {Mid: "2"}}, h: packet(t, 50, nil), want: Route{Mid: "2"}},
		}},
		{"unprintable extension values are ignored", []step{
			{describe: []string{"1"}, h: packet(t, 60, map[uint8]string{1: "1\x00"}), err: ErrUnknownSSRC},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := NewInbound()
			for i, s := range tt.steps {
				if s.describe != nil {
					in.Describe(testIDs, s.describe, s.declared)
				}
				got, err := in.Route(s.h)
				if !errors.Is(err, s.err) || (err == nil && got != s.want) {
					t.Fatalf("step %d: %+v, %v; want %+v, %v", i, got, err, s.want, s.err)
				}
			}
		})
	}
}

// TestInboundLearnsBoundedSSRCs: a remote side that sends on ever new
// SSRCs makes the connection learn at most maxLearned.
func TestInboundLearnsBoundedSSRCs(t *testing.T) {
	in := NewInbound()
	in.Describe(testIDs, []string{"0"}, nil)
	for i := range maxLearned + 10 {
		_, err := in.Route(packet(t, uint32(1000+i), map[uint8]string{1: "0"}))
		if (err == nil) != (i < maxLearned) {
			t.Fatalf("SSRC %d: %v", i, err)
		}
	}
}

// FuzzInboundRoute: no packet makes routing panic, and a learned route
// names a section that sends.
func FuzzInboundRoute(f *testing.F) {
	for _, exts := range []map[uint8]string{{1: "0", 2: "q"}, {1: "1", 3: "h"}, {1: "0"}} {
		b, _ := (&rtp.Packet{Header: *packet(f, 7, exts), Payload: []byte{1}}).Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h rtp.Header
		if _, err := h.Unmarshal(b); err != nil {
			return
		}
		in := NewInbound()
		in.Describe(testIDs, []string{"0", "1"}, nil)
		r, err := in.Route(&h)
		if err == nil && r.Mid != "0" && r.Mid != "1" {
			t.Fatalf("routed to %s", fmt.Sprint(r))
		}
	})
}
