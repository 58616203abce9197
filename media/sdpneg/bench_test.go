package sdpneg_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/openconsult/openconsult/media/sdpneg"
)

// A member's first offer as Chromium writes it, answered.
func BenchmarkChromiumOffer(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "chromium-join-offer.sdp"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		n, err := sdpneg.New(nodeConfig())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.ApplyOffer(string(raw)); err != nil {
			b.Fatal(err)
		}
		if _, err := n.CreateAnswer(); err != nil {
			b.Fatal(err)
		}
	}
}

// The node's offer of a room of 64 publishers: 128 tracks.
func BenchmarkOffer128Tracks(b *testing.B) {
	n, err := sdpneg.New(nodeConfig())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := n.ApplyOffer(first()); err != nil {
		b.Fatal(err)
	}
	if _, err := n.CreateAnswer(); err != nil {
		b.Fatal(err)
	}
	for i := range 128 {
		kind := sdpneg.Audio
		if i%2 == 1 {
			kind = sdpneg.Video
		}
		tr := sdpneg.Track{ID: fmt.Sprintf("t%d", i), StreamID: fmt.Sprintf("m%d/s", i/2), Kind: kind, SSRC: uint32(1000 + 2*i), RTXSSRC: uint32(1001 + 2*i)}
		if err := n.AddTrack(tr); err != nil {
			b.Fatal(err)
		}
	}
	var size int
	for b.Loop() {
		offer, err := n.CreateOffer()
		if err != nil {
			b.Fatal(err)
		}
		size = len(offer)
		if err := n.Rollback(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "offer-bytes")
}
