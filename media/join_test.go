package media_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

// offerCounter is a node whose sessions' offers to their participants
// are counted by member.
type offerCounter struct {
	media.Node
	mu     sync.Mutex
	offers map[string]int
}

func (n *offerCounter) Join(ctx context.Context, room, member string, out media.Events) (media.Participant, error) {
	return n.Node.Join(ctx, room, member, countedEvents{Events: out, n: n, member: member})
}

func (n *offerCounter) count(member string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.offers[member]
}

type countedEvents struct {
	media.Events
	n      *offerCounter
	member string
}

func (e countedEvents) Offer(sdp string) {
	e.n.mu.Lock()
	e.n.offers[e.member]++
	e.n.mu.Unlock()
	e.Events.Offer(sdp)
}

// TestFirstAnswerCarriesPublications: a member who joins a room where
// video is published, offering only to receive, gets the video with the
// answer to its first offer, without a second negotiation; a member who
// publishes too gets the room's tracks with the node's first offer.
func TestFirstAnswerCarriesPublications(t *testing.T) {
	for _, udp := range []string{"127.0.0.1:0", ""} {
		sfu := newSFU(t, media.Config{Settings: nodetest.LoopbackSettings(), UDPListen: udp})
		node := &offerCounter{Node: sfu, offers: map[string]int{}}
		r := nodetest.NewRoom(t)
		r.Join(node, "pub", nodetest.Publish{Video: true})
		first := r.Join(node, "first", nodetest.Publish{})
		eventually.True(t, 20*time.Second, "video at the first subscriber", func() bool { return first.From("pub/pub") > 20 })

		viewer := r.Join(node, "viewer", nodetest.Publish{})
		eventually.True(t, 20*time.Second, "video at the viewer", func() bool { return viewer.From("pub/pub") > 20 })
		if n := node.count("viewer"); n != 0 {
			t.Errorf("UDPListen %q: the viewer got %d offers from the node, want 0: its answer carried the video", udp, n)
		}
		publisher := r.Join(node, "publisher", nodetest.Publish{Video: true})
		eventually.True(t, 20*time.Second, "video at the late publisher", func() bool { return publisher.From("pub/pub") > 20 })
		if n := node.count("publisher"); n < 1 {
			t.Errorf("UDPListen %q: the late publisher got no offer, want the room's video in one", udp)
		}
	}
}
