package media

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// section is one media section of a test description.
type section struct {
	kind, mid string
	port      int
	direction string
}

// description writes a description with sections, all in the BUNDLE
// group but the rejected ones.
func description(sections ...section) string {
	var b strings.Builder
	var bundle []string
	for _, s := range sections {
		if s.port != 0 {
			bundle = append(bundle, s.mid)
		}
	}
	b.WriteString("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", strings.Join(bundle, " "))
	for _, s := range sections {
		pt := map[string]string{"audio": "111", "video": "96"}[s.kind]
		fmt.Fprintf(&b, "m=%s %d UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\na=%s\r\n", s.kind, s.port, pt, s.mid, s.direction)
	}
	return b.String()
}

// summary lists the sections of a description as mid:port:direction, and
// its BUNDLE group.
func summary(t *testing.T, desc string) string {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		t.Fatalf("description %q: %v", desc, err)
	}
	var out []string
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		dir := ""
		for _, k := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
			if _, ok := m.Attribute(k); ok {
				dir = k
			}
		}
		out = append(out, fmt.Sprintf("%s:%d:%s", mid, m.MediaName.Port.Value, dir))
	}
	group, _ := d.Attribute(sdp.AttrKeyGroup)
	return strings.Join(out, " ") + " | " + group
}

func TestOmitStopped(t *testing.T) {
	mic := section{"audio", "0", 9, "recvonly"}
	spare := section{"video", "1", 9, "sendonly"}
	for _, tc := range []struct {
		name          string
		offer, remote []section
		want          string // summary of the offer sent; "" for the offer unchanged
	}{
		{
			name:   "nothing stopped",
			offer:  []section{mic, spare, {"video", "2", 9, "recvonly"}, {"video", "3", 9, "sendonly"}},
			remote: []section{mic, spare, {"video", "2", 9, "sendonly"}},
		},
		{
			name:   "a section the participant rejects is rejected and leaves the group",
			offer:  []section{mic, spare, {"video", "2", 9, "inactive"}, {"audio", "3", 9, "sendonly"}},
			remote: []section{mic, spare, {"video", "2", 0, "inactive"}},
			want:   "0:9:recvonly 1:9:sendonly 2:0:inactive 3:9:sendonly | BUNDLE 0 1 3",
		},
		{
			name: "a section whose place the participant took is left out",
			offer: []section{mic, spare, {"video", "4", 9, "recvonly"},
				{"video", "2", 9, "inactive"}, {"video", "3", 9, "inactive"}, {"audio", "5", 9, "sendonly"}},
			remote: []section{mic, spare, {"video", "4", 9, "sendonly"}},
			want:   "0:9:recvonly 1:9:sendonly 4:9:recvonly 5:9:sendonly | BUNDLE 0 1 4 5",
		},
		{
			name:   "both at once",
			offer:  []section{mic, spare, {"video", "4", 9, "inactive"}, {"video", "2", 9, "inactive"}},
			remote: []section{mic, spare, {"video", "4", 0, "inactive"}},
			want:   "0:9:recvonly 1:9:sendonly 4:0:inactive | BUNDLE 0 1",
		},
		{
			name:   "a new section of the node's stays whatever its direction",
			offer:  []section{mic, spare, {"video", "2", 9, "sendonly"}},
			remote: []section{mic, spare},
		},
		{
			name:   "the first section carries the transport and stays",
			offer:  []section{{"audio", "0", 9, "inactive"}, spare},
			remote: []section{{"audio", "0", 0, "inactive"}, spare},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offer := description(tc.offer...)
			got, err := omitStopped(offer, description(tc.remote...))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != offer {
					t.Errorf("offer changed to %s, want it as it was: %s", summary(t, got), summary(t, offer))
				}
				return
			}
			if s := summary(t, got); s != tc.want {
				t.Errorf("offer sent: %s, want %s", s, tc.want)
			}
		})
	}
}

func TestOmitStoppedRefusesBadDescriptions(t *testing.T) {
	good := description(section{"audio", "0", 9, "sendrecv"})
	for _, tc := range []struct {
		name, offer, remote, want string
	}{
		{"participant's", good, "v=0\r\nnonsense", "participant's description"},
		{"node's", "v=0\r\nnonsense", good, "node's offer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := omitStopped(tc.offer, tc.remote)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about the %s", err, tc.want)
			}
		})
	}
}

// FuzzOmitStopped checks that any pair of descriptions gives an error or
// an offer that parses, with no more sections than the node's and every
// section the participant described kept in its place.
func FuzzOmitStopped(f *testing.F) {
	mic := section{"audio", "0", 9, "sendrecv"}
	f.Add(description(mic, section{"video", "1", 9, "inactive"}, section{"video", "2", 9, "inactive"}),
		description(mic, section{"video", "1", 0, "inactive"}))
	f.Add(description(mic), description(mic))
	f.Add("v=0\r\n", "")
	f.Fuzz(func(t *testing.T, offer, remote string) {
		got, err := omitStopped(offer, remote)
		if err != nil {
			return
		}
		var o, g, r sdp.SessionDescription
		if err := g.UnmarshalString(got); err != nil {
			t.Fatalf("offer sent does not parse: %v\n%q", err, got)
		}
		if o.UnmarshalString(offer) != nil || r.UnmarshalString(remote) != nil {
			t.Fatal("omitStopped took a description that does not parse")
		}
		if len(g.MediaDescriptions) > len(o.MediaDescriptions) {
			t.Fatalf("%d sections sent for %d offered", len(g.MediaDescriptions), len(o.MediaDescriptions))
		}
		described := map[string]bool{}
		for _, m := range r.MediaDescriptions {
			mid, _ := m.Attribute(sdp.AttrKeyMID)
			described[mid] = true
		}
		var want, sent []string
		for _, m := range o.MediaDescriptions {
			if mid, _ := m.Attribute(sdp.AttrKeyMID); described[mid] {
				want = append(want, mid)
			}
		}
		for _, m := range g.MediaDescriptions {
			if mid, _ := m.Attribute(sdp.AttrKeyMID); described[mid] {
				sent = append(sent, mid)
			}
		}
		if strings.Join(want, " ") != strings.Join(sent, " ") {
			t.Fatalf("sections the participant described: sent %q, offered %q", sent, want)
		}
	})
}
