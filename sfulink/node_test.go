package sfulink

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/media/nodetest"
)

func TestRemoteNodePassesNodeSuite(t *testing.T) {
	nodetest.Run(t, func(t *testing.T, c nodetest.Config) media.Node {
		p := newPKI(t)
		n := startSuiteNode(t, p, c)
		return newClientWith(t, n.url, clientTLS(t, p), suiteHeartbeat)
	})
}

func TestPoolPassesNodeSuite(t *testing.T) {
	nodetest.Run(t, func(t *testing.T, c nodetest.Config) media.Node {
		p := newPKI(t)
		a := startSuiteNode(t, p, c)
		nodes := []string{a.url}
		if c.MaxParticipants == 0 {
			nodes = append(nodes, startSuiteNode(t, p, c).url)
		} else {
			// The suite expects a pool of MaxParticipants in all; the
			// second node is one that died, which the pool must skip.
			dead := startSuiteNode(t, p, c)
			dead.http.Close()
			dead.srv.Close()
			nodes = append(nodes, dead.url)
		}
		return startPool(t, p, suiteHeartbeat, nodes...)
	})
}

func TestErrFullCrossesTheWire(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 1)
	c := newTestClient(t, n.url, clientTLS(t, p))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Join(ctx, "c_1", "m_1", newRecorder()); err != nil {
		t.Fatal(err)
	}
	_, err := c.Join(ctx, "c_2", "m_2", newRecorder())
	var linkErr *Error
	if !errors.Is(err, media.ErrFull) || !errors.As(err, &linkErr) || linkErr.Code != "full" {
		t.Fatalf("join on a full node = %v, want ErrFull with code full", err)
	}
	if errors.Is(err, media.ErrUnavailable) {
		t.Fatalf("a full node is not an unavailable one: %v", err)
	}
	if l := c.Load(); l.Participants != 1 || l.MaxParticipants != 1 {
		t.Fatalf("Load = %+v after join", l)
	}
}

// TestNodeDeathClosesSessionsAndPoolMovesRoom blackholes a node, as a
// crash or a network failure does: the heartbeat notices, every session on
// it gets Closed with ErrUnavailable, and the rejoins land on the other
// node, where media flows.
func TestNodeDeathClosesSessionsAndPoolMovesRoom(t *testing.T) {
	p := newPKI(t)
	a, b := startNode(t, p, 0), startNode(t, p, 0)
	pa, pb := startProxy(t, a.ln.Addr().String()), startProxy(t, b.ln.Addr().String())
	pool := startPool(t, p, testHeartbeat, pa.url, pb.url)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	recs := map[string]*recorder{}
	for _, m := range []string{"clinician", "patient", "interpreter"} {
		recs[m] = newRecorder()
		if _, err := pool.Join(ctx, "c_1", m, recs[m]); err != nil {
			t.Fatal(err)
		}
	}
	// A second room goes to the less loaded node.
	other := newRecorder()
	if _, err := pool.Join(ctx, "c_2", "m_9", other); err != nil {
		t.Fatal(err)
	}
	if got := pool.NodeOf("c_1"); got != pa.url {
		t.Fatalf("room c_1 on %q, want the first node %q", got, pa.url)
	}
	if got := pool.NodeOf("c_2"); got != pb.url {
		t.Fatalf("room c_2 on %q, want the less loaded node %q", got, pb.url)
	}

	start := time.Now()
	pa.cutOff()
	for m, r := range recs {
		if err := r.waitClosed(t, 5*time.Second); !errors.Is(err, media.ErrUnavailable) {
			t.Fatalf("%s: Closed(%v), want ErrUnavailable", m, err)
		}
	}
	t.Logf("dead node noticed after %s", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-other.closed:
		t.Fatalf("a session on the live node got Closed(%v)", err)
	default:
	}
	// The node also ends the sessions of the link it lost.
	eventually.True(t, 5*time.Second, "the dead link's sessions to leave the node", func() bool { return a.sfu.Load().Participants == 0 })

	// The members rejoin, with real media, and land on the other node.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	quiet := &atomic.Bool{}
	defer func() { quiet.Store(true); close(stop); wg.Wait() }()
	var ps []*nodetest.Participant
	for _, m := range []string{"clinician", "patient"} {
		pt, err := nodetest.Join(t, pool, "c_1", m, quiet)
		if err != nil {
			t.Fatalf("rejoin %s: %v", m, err)
		}
		pt.Send(stop, &wg)
		ps = append(ps, pt)
	}
	if got := pool.NodeOf("c_1"); got != pb.url {
		t.Fatalf("room c_1 rejoined on %q, want %q", got, pb.url)
	}
	nodetest.WaitAllReceive(t, ps, 20, 20*time.Second)
	if l := b.sfu.Load(); l.Rooms != 2 || l.Participants != 3 {
		t.Fatalf("surviving node load %+v, want 2 rooms, 3 participants", l)
	}
}

func TestPoolReleasesRoomWithLastParticipant(t *testing.T) {
	p := newPKI(t)
	a, b := startNode(t, p, 0), startNode(t, p, 0)
	pool := startPool(t, p, 0, a.url, b.url)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	var sessions []media.Participant
	for _, m := range []string{"a", "b", "b"} { // b joins again: still two members
		s, err := pool.Join(ctx, "c_1", m, newRecorder())
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if pool.Rooms() != 1 {
		t.Fatalf("Rooms = %d", pool.Rooms())
	}
	sessions[1].Close() // the replaced session: the room keeps both members
	sessions[0].Close()
	if pool.Rooms() != 1 || pool.NodeOf("c_1") != a.url {
		t.Fatalf("room released while b is in it: %d rooms, node %q", pool.Rooms(), pool.NodeOf("c_1"))
	}
	sessions[2].Close()
	if pool.Rooms() != 0 {
		t.Fatalf("Rooms = %d after the last participant left", pool.Rooms())
	}
	eventually.True(t, 5*time.Second, "the node to have no participant", func() bool { return a.sfu.Load().Participants == 0 })
}

func TestPoolWithNoNodeUpIsUnavailable(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 0)
	n.http.Close()
	pool := startPool(t, p, 0, n.url)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := pool.Join(ctx, "c_1", "m_1", newRecorder()); !errors.Is(err, media.ErrUnavailable) || errors.Is(err, media.ErrFull) {
		t.Fatalf("join with every node down = %v, want ErrUnavailable", err)
	}
	if pool.Rooms() != 0 {
		t.Fatal("a room that found no node keeps an affinity")
	}
}

func TestShutdownClosesSessionsWithUnavailable(t *testing.T) {
	j := joinedClient(t)
	n, r, ctx := j.n, j.r, j.ctx
	n.http.Close()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	err := r.waitClosed(t, 5*time.Second)
	var linkErr *Error
	if !errors.Is(err, media.ErrUnavailable) || !errors.As(err, &linkErr) || linkErr.Code != "shutdown" {
		t.Fatalf("Closed(%v), want the node's shutdown", err)
	}
	if l := n.sfu.Load(); l.Participants != 0 {
		t.Fatalf("node keeps %+v after shutdown", l)
	}
}

// TestJoinAgainOverAnotherLinkReplacesSilently: a member whose browser
// reconnects through another signal process replaces its session; the old
// one ends without Closed and the node forgets it.
func TestJoinAgainOverAnotherLinkReplacesSilently(t *testing.T) {
	p := newPKI(t)
	n := startNode(t, p, 0)
	c1 := newTestClient(t, n.url, clientTLS(t, p))
	c2 := newTestClient(t, n.url, clientTLS(t, p))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	old := newRecorder()
	s1, err := c1.Join(ctx, "c_1", "m_1", old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Join(ctx, "c_1", "m_1", newRecorder()); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the replaced session to end", func() bool {
		rp := s1.(*remoteParticipant)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		return rp.finished
	})
	if err := s1.Offer("v=0"); err == nil {
		t.Fatal("an offer on a replaced session succeeded")
	}
	select {
	case err := <-old.closed:
		t.Fatalf("replaced session got Closed(%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if l := n.sfu.Load(); l.Participants != 1 {
		t.Fatalf("node load %+v, want 1 participant", l)
	}
}

// TestClientReconnectsToARestartedNode: sessions of the lost link get
// Closed, and once the node is back on its address the client reconnects
// by itself and joins work again.
func TestClientReconnectsToARestartedNode(t *testing.T) {
	j := joinedClient(t)
	p, n, c, r, ctx := j.p, j.n, j.c, j.r, j.ctx
	addr := n.ln.Addr().String()
	n.stop()
	if err := r.waitClosed(t, 5*time.Second); !errors.Is(err, media.ErrUnavailable) {
		t.Fatalf("Closed(%v), want ErrUnavailable", err)
	}
	if c.Up() {
		t.Fatal("client up after its node died")
	}
	if _, err := c.Join(ctx, "c_1", "m_1", newRecorder()); !errors.Is(err, media.ErrUnavailable) {
		t.Fatalf("join while the node is down = %v, want ErrUnavailable", err)
	}

	cfg, err := ServerTLS(p.NodeCert, p.NodeKey, p.CA.File)
	if err != nil {
		t.Fatal(err)
	}
	back := startNodeAt(t, cfg, nodetest.Config{}, addr, testHeartbeat)
	eventually.True(t, 5*time.Second, "the client to reconnect", c.Up)
	if _, err := c.Join(ctx, "c_1", "m_1", newRecorder()); err != nil {
		t.Fatalf("join after reconnection: %v", err)
	}
	if l := back.sfu.Load(); l.Participants != 1 {
		t.Fatalf("restarted node load %+v", l)
	}
}

// TestPoolFallsBackWhenANodeIsFull: another signal process fills the first
// node; this pool's view of it may still be stale, the node answers full
// and the room goes to the next node.
func TestPoolFallsBackWhenANodeIsFull(t *testing.T) {
	p := newPKI(t)
	a, b := startNode(t, p, 1), startNode(t, p, 1)
	pool := startPool(t, p, 0, a.url, b.url)
	eventually.True(t, 5*time.Second, "both nodes' capacity in the pool's load", func() bool { return pool.Load().MaxParticipants == 2 })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	elsewhere := newTestClient(t, a.url, clientTLS(t, p))
	if _, err := elsewhere.Join(ctx, "c_other", "m_0", newRecorder()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Join(ctx, "c_1", "m_1", newRecorder()); err != nil {
		t.Fatalf("join with one node full: %v", err)
	}
	if got := pool.NodeOf("c_1"); got != b.url {
		t.Fatalf("room on %q, want %q", got, b.url)
	}
	// Both full now: the pool says so.
	_, err := pool.Join(ctx, "c_2", "m_2", newRecorder())
	if !errors.Is(err, media.ErrFull) || !errors.Is(err, media.ErrUnavailable) {
		t.Fatalf("join with every node full = %v, want ErrFull and ErrUnavailable", err)
	}
	// A room that is placed stays on its node even when that node is full.
	if _, err := pool.Join(ctx, "c_1", "m_3", newRecorder()); !errors.Is(err, media.ErrFull) || pool.NodeOf("c_1") != b.url {
		t.Fatalf("join of a full node's room = %v (room on %q), want ErrFull and the room kept", err, pool.NodeOf("c_1"))
	}
	// The first node pushed its new load, joined through another link.
	eventually.True(t, 3*time.Second, "both nodes' participants in the pool's load", func() bool { return pool.Load().Participants == 2 })
}
