package signaling

import "testing"

func TestLobbyShowsTheGuestsConnectivityCheck(t *testing.T) {
	tests := []struct {
		name, sent, want string
	}{
		{"failed check", "failed", "failed"},
		{"relay only", "relay", "relay"},
		{"direct", "direct", "direct"},
		{"could not run", "unknown", "unknown"},
		{"none sent", "", ""},
		{"not a result", "<b>ok</b>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			_, _, host := f.join(t, "u_doc", true)
			if _, _, err := f.hub.Join("c_1", Participant{ID: "g_pat", Name: "Pat", Kind: "guest", Check: tt.sent}, &tab{}); err != nil {
				t.Fatal(err)
			}
			w := host.last("lobby")
			if w == nil {
				t.Fatal("host saw no lobby")
			}
			entry := w["waiting"].([]any)[0].(map[string]any)
			got, has := entry["check"]
			if tt.want == "" {
				if has {
					t.Fatalf("lobby entry carries check %v", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("lobby entry check = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestResumeKeepsOrUpdatesTheCheck(t *testing.T) {
	f := newFixture()
	f.join(t, "u_doc", true)
	for _, step := range []struct{ sent, want string }{
		{"failed", "failed"},
		{"", "failed"},      // a tab that lost its storage keeps the result
		{"bogus", "failed"}, // and so does one that sent nonsense
		{"relay", "relay"},  // the check ran again and passed
	} {
		r, m, err := f.hub.Join("c_1", Participant{ID: "g_pat", Name: "Pat", Kind: "guest", Check: step.sent}, &tab{})
		if err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		got := m.check
		r.mu.Unlock()
		if got != step.want {
			t.Fatalf("after joining with %q: check %q, want %q", step.sent, got, step.want)
		}
	}
}

// TestLobbySaysWhenAGuestHasNoMicrophone: the flag reaches the hosts'
// lobby entry, and a tab that comes back with a microphone clears it.
func TestLobbySaysWhenAGuestHasNoMicrophone(t *testing.T) {
	f := newFixture()
	_, _, host := f.join(t, "u_doc", true)
	for _, noMic := range []bool{true, false} {
		if _, _, err := f.hub.Join("c_1", Participant{ID: "g_pat", Name: "Pat", Kind: "guest", NoMic: noMic}, &tab{}); err != nil {
			t.Fatal(err)
		}
		w := host.last("lobby")
		if w == nil {
			t.Fatal("host saw no lobby")
		}
		entry := w["waiting"].([]any)[0].(map[string]any)
		if got, _ := entry["noMic"].(bool); got != noMic {
			t.Fatalf("joined with noMic=%v: lobby entry %v", noMic, entry)
		}
	}
}
