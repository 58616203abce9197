package media

import "testing"

// TestSpeakerDetector drives the detector tick by tick (200 ms each).
func TestSpeakerDetector(t *testing.T) {
	const loud, quiet = 100.0, 0.0
	type step struct {
		ticks int
		in    map[string]float64
		want  string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nobody speaks", []step{
			{10, map[string]float64{"a": quiet, "b": quiet}, ""},
		}},
		{"one speaker is found within a second", []step{
			{5, map[string]float64{"a": loud, "b": quiet}, "a"},
		}},
		{"a short interruption does not take over", []step{
			{10, map[string]float64{"a": loud, "b": quiet}, "a"},
			{1, map[string]float64{"a": loud, "b": 127}, "a"},
			{5, map[string]float64{"a": loud, "b": quiet}, "a"},
		}},
		{"someone clearly louder for a while takes over", []step{
			{10, map[string]float64{"a": 85, "b": quiet}, "a"},
			{15, map[string]float64{"a": 85, "b": 120}, "b"},
		}},
		{"two equally loud do not flap", []step{
			{10, map[string]float64{"a": loud, "b": quiet}, "a"},
			{20, map[string]float64{"a": loud, "b": loud}, "a"},
		}},
		{"the speaker falls silent and another starts", []step{
			{10, map[string]float64{"a": loud, "b": quiet}, "a"},
			{15, map[string]float64{"a": quiet, "b": loud}, "b"},
		}},
		{"silence clears the speaker", []step{
			{10, map[string]float64{"a": loud}, "a"},
			{25, map[string]float64{"a": quiet}, ""},
		}},
		{"the speaker leaves", []step{
			{10, map[string]float64{"a": loud, "b": quiet}, "a"},
			{15, map[string]float64{"b": loud}, "b"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSpeakerDetector()
			changes := 0
			var got string
			for _, s := range tt.steps {
				for range s.ticks {
					var changed bool
					if got, changed = d.tick(s.in); changed {
						changes++
					}
				}
				if got != s.want {
					t.Fatalf("speaker %q, want %q (after %d changes)", got, s.want, changes)
				}
			}
			if changes > len(tt.steps)+1 {
				t.Errorf("%d changes in %d steps: flapping", changes, len(tt.steps))
			}
		})
	}
}

func TestLevelMeter(t *testing.T) {
	var m levelMeter
	if m.take() != 0 {
		t.Fatal("an empty meter is not silent")
	}
	m.add([]byte{0x80 | 27}) // voice, -27 dBov
	m.add([]byte{127})
	m.add(nil) // a packet without the extension counts for nothing
	if got := m.take(); got != 50 {
		t.Fatalf("mean loudness %v, want 50", got)
	}
	if m.take() != 0 {
		t.Fatal("take did not reset")
	}
}
