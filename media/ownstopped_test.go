package media_test

import (
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// TestStoppedSectionIsOfferedAgain: on the node's own transport, a member
// stops the section it receives a publication on (port 0, as browsers
// write it); the node sends the publication again, on another section
// and with new SSRCs, with its next offer, and the member receives it
// there. The track once stayed off every section: nothing asked for the
// node's offer. (A session on pion's PeerConnection still leaves it off;
// the web app never stops a section it receives on.)
func TestStoppedSectionIsOfferedAgain(t *testing.T) {
	sfu := newSFU(t, media.Config{Log: testLog(), Settings: nodetest.LoopbackSettings(), UDPListen: "127.0.0.1:0", OwnTransport: true})
	r := nodetest.NewRoom(t)
	r.Join(sfu, "a", nodetest.Publish{Video: true})
	b := r.Join(sfu, "b", nodetest.Publish{Audio: true})
	eventually.True(t, 20*time.Second, "b receives a", func() bool { return b.From("a/a") > 20 })
	if err := b.StopReceiving("a/a"); err != nil {
		t.Fatal(err)
	}
	before := b.From("a/a")
	eventually.True(t, 20*time.Second, "b receives a again", func() bool { return b.From("a/a") > before+50 })
}
