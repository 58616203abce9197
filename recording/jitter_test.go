package recording

import (
	"slices"
	"testing"
)

func TestJitterReordersAndSkipsLoss(t *testing.T) {
	for _, tt := range []struct {
		name  string
		depth int
		in    []uint16
		out   []uint16
		lost  int
	}{
		{"in order", 4, []uint16{10, 11, 12}, []uint16{10, 11, 12}, 0},
		{"swapped", 4, []uint16{10, 12, 11, 13}, []uint16{10, 11, 12, 13}, 0},
		{"late and duplicate dropped", 4, []uint16{10, 11, 11, 9, 12}, []uint16{10, 11, 12}, 0},
		{"gap skipped once depth is full", 2, []uint16{10, 12, 13, 14}, []uint16{10, 12, 13, 14}, 1},
		{"wraps", 4, []uint16{65534, 0, 65535, 1}, []uint16{65534, 65535, 0, 1}, 0},
		{"far jump resets", 4, []uint16{10, 11, 5000, 5001}, []uint16{10, 11, 5000, 5001}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := jitter{depth: tt.depth}
			var got []uint16
			lost := 0
			out := func(p *packet) { got = append(got, p.seq) }
			for _, s := range tt.in {
				j.push(&packet{seq: s}, out, func() { lost++ })
			}
			j.flush(out, func() { lost++ })
			if !slices.Equal(got, tt.out) || lost != tt.lost {
				t.Fatalf("out %v lost %d; want %v lost %d", got, lost, tt.out, tt.lost)
			}
		})
	}
}
