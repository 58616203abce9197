package sfulink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/media"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Nodes are the link URLs of the media nodes, wss://host:7443/.
	Nodes []string
	// TLS holds the client certificate and the nodes' CA (see ClientTLS).
	TLS *tls.Config
	Log *slog.Logger
	// Heartbeat is the links' ping interval; 0 for DefaultHeartbeat.
	Heartbeat time.Duration
	// ReplyTimeout is each client's (see ClientConfig); 0 for
	// DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// Metrics counts the nodes' floods (NewMetrics); nil counts nothing.
	Metrics *Metrics
}

// Pool is a media.Node over several remote nodes. All participants of a
// room must share a node, so the pool keeps every room on the node its
// first participant joined (room affinity) until its last participant
// leaves. A new room goes to the reachable node with the fewest
// participants that reports room for one more, falling back to the next on
// ErrFull. When a node is lost its sessions get Closed (wrapping
// media.ErrUnavailable) and the pool forgets its rooms, so that the
// members' rejoins land on another node.
type Pool struct {
	clients []*Client
	log     *slog.Logger

	mu    sync.Mutex
	rooms map[string]*poolRoom
}

type poolRoom struct {
	node    *Client
	placing chan struct{} // closed when the first join has placed the room
	joining int           // joins under way on node
	members map[string]*poolParticipant
}

// NewPool starts a Client for each of cfg.Nodes. It fails on a bad
// configuration, not on a node that is down: nodes come and go.
func NewPool(ctx context.Context, cfg PoolConfig) (*Pool, error) {
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("sfulink: a pool needs at least one node")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{log: log, rooms: map[string]*poolRoom{}}
	for _, u := range cfg.Nodes {
		c, err := NewClient(ctx, ClientConfig{URL: u, TLS: cfg.TLS, Log: log, Heartbeat: cfg.Heartbeat, ReplyTimeout: cfg.ReplyTimeout, Metrics: cfg.Metrics})
		if err != nil {
			p.Close()
			return nil, err
		}
		p.clients = append(p.clients, c)
	}
	return p, nil
}

// Close closes every client; their sessions get Closed.
func (p *Pool) Close() {
	for _, c := range p.clients {
		c.Close()
	}
}

// Load implements media.Node: the sum over the reachable nodes; a limit is
// 0 (none) when any reachable node has none.
func (p *Pool) Load() media.Load {
	var sum media.Load
	unlimitedP, unlimitedT := false, false
	for _, c := range p.clients {
		if !c.Up() {
			continue
		}
		l := c.Load()
		sum.Rooms += l.Rooms
		sum.Participants += l.Participants
		sum.Tracks += l.Tracks
		sum.Recordings += l.Recordings
		sum.MaxParticipants += l.MaxParticipants
		sum.MaxTracks += l.MaxTracks
		unlimitedP = unlimitedP || l.MaxParticipants == 0
		unlimitedT = unlimitedT || l.MaxTracks == 0
	}
	if unlimitedP {
		sum.MaxParticipants = 0
	}
	if unlimitedT {
		sum.MaxTracks = 0
	}
	return sum
}

// Join implements media.Node.
func (p *Pool) Join(ctx context.Context, roomID, memberID string, events media.Events) (media.Participant, error) {
	for lost := 0; ; {
		p.mu.Lock()
		r := p.rooms[roomID]
		switch {
		case r == nil:
			// This join places the room; concurrent joins of the same
			// room wait for it rather than pick a node of their own.
			r = &poolRoom{placing: make(chan struct{}), joining: 1, members: map[string]*poolParticipant{}}
			p.rooms[roomID] = r
			p.mu.Unlock()
			pp, err := p.place(ctx, r, roomID, memberID, events)
			p.mu.Lock()
			r.joining--
			close(r.placing)
			r.placing = nil
			p.releaseLocked(roomID, r) // nobody in it after a failure or a quick end
			p.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return pp, nil
		case r.placing != nil:
			ch := r.placing
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("join room %s: %w", roomID, ctx.Err())
			}
			continue
		}
		node := r.node
		r.joining++
		p.mu.Unlock()
		pp, err := p.joinOn(ctx, node, r, roomID, memberID, events)
		p.mu.Lock()
		r.joining--
		if err == nil {
			p.releaseLocked(roomID, r)
			p.mu.Unlock()
			return pp, nil
		}
		if errors.Is(err, media.ErrUnavailable) && !errors.Is(err, media.ErrFull) && lost == 0 {
			// The room's node is gone or going: forget it and place the
			// room again.
			lost++
			if p.rooms[roomID] == r {
				delete(p.rooms, roomID)
			}
			p.mu.Unlock()
			continue
		}
		p.releaseLocked(roomID, r)
		p.mu.Unlock()
		return nil, err
	}
}

// place joins the first member of a room on the best node that takes it.
func (p *Pool) place(ctx context.Context, r *poolRoom, roomID, memberID string, events media.Events) (*poolParticipant, error) {
	candidates, errs := p.candidates()
	if len(candidates) == 0 {
		// Right after start no link may be up yet.
		for _, c := range p.clients {
			c.waitSettled(ctx)
		}
		candidates, errs = p.candidates()
	}
	for _, c := range candidates {
		pp, err := p.joinOn(ctx, c, r, roomID, memberID, events)
		if err == nil {
			p.log.Info("sfulink room placed", "room", roomID, "node", c.URL())
			return pp, nil
		}
		if ctx.Err() != nil || !(errors.Is(err, media.ErrFull) || errors.Is(err, media.ErrUnavailable)) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("sfulink: no media node can take room %s: %w (%w)", roomID, media.ErrUnavailable, causes(errs))
}

// causes is why each node could not take a room, on one line for the log.
type causes []error

func (c causes) Error() string {
	s := make([]string, len(c))
	for i, err := range c {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (c causes) Unwrap() []error { return c }

// candidates are the reachable nodes with room for one more participant,
// least loaded first, and why the others are not.
func (p *Pool) candidates() ([]*Client, []error) {
	type cand struct {
		c    *Client
		load media.Load
	}
	var cs []cand
	var errs []error
	for _, c := range p.clients {
		l := c.Load()
		switch {
		case !c.Up():
			errs = append(errs, fmt.Errorf("%s: down", c.URL()))
		case !l.HasRoom(1):
			errs = append(errs, fmt.Errorf("%s: %d of %d participants: %w", c.URL(), l.Participants, l.MaxParticipants, media.ErrFull))
		default:
			cs = append(cs, cand{c, l})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.load.Participants - b.load.Participants })
	out := make([]*Client, len(cs))
	for i, c := range cs {
		out[i] = c.c
	}
	return out, errs
}

// joinOn joins on node and records the member in the room; the caller
// placed r on node (or is placing it there).
func (p *Pool) joinOn(ctx context.Context, node *Client, r *poolRoom, roomID, memberID string, events media.Events) (*poolParticipant, error) {
	pp := &poolParticipant{pool: p, room: roomID, member: memberID, node: node, r: r}
	pp.events = poolEvents{pp: pp, inner: events}
	inner, err := node.Join(ctx, roomID, memberID, pp.events)
	if err != nil {
		return nil, err
	}
	pp.Participant = inner
	p.mu.Lock()
	if cur := p.rooms[roomID]; cur != r {
		if cur != nil {
			// The room's node was lost while this join ran and the room
			// went elsewhere: a session here would split it.
			p.mu.Unlock()
			inner.Close()
			return nil, fmt.Errorf("sfulink: room %s moved while joining %s: %w", roomID, node.URL(), media.ErrUnavailable)
		}
		// The room was forgotten while this join ran; it lives on here.
		p.rooms[roomID] = r
	}
	defer p.mu.Unlock()
	r.node = node
	// A session Closed before Join returned is not counted: its owner
	// hears of the end through events.
	if !pp.gone {
		r.members[memberID] = pp // a member that joins again replaces itself
	}
	return pp, nil
}

// releaseLocked forgets a room nobody is in or joining; p.mu is held.
func (p *Pool) releaseLocked(roomID string, r *poolRoom) {
	if len(r.members) == 0 && r.joining == 0 && r.placing == nil && p.rooms[roomID] == r {
		delete(p.rooms, roomID)
	}
}

// leave removes a session from its room; lost says its node is gone, so
// the room's affinity goes with it.
func (p *Pool) leave(pp *poolParticipant, lost bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp.gone = true
	r := pp.r
	if r.members[pp.member] == pp {
		delete(r.members, pp.member)
	}
	if lost && r.node == pp.node && p.rooms[pp.room] == r {
		delete(p.rooms, pp.room)
		p.log.Warn("sfulink room lost its node", "room", pp.room, "node", pp.node.URL())
		return
	}
	p.releaseLocked(pp.room, r)
}

// Rooms reports how many rooms the pool has placed, for tests and metrics.
func (p *Pool) Rooms() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rooms)
}

// NodeOf reports the URL of the node roomID is on, "" if none.
func (p *Pool) NodeOf(roomID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[roomID]; r != nil && r.node != nil {
		return r.node.URL()
	}
	return ""
}

// poolParticipant is a session the pool placed.
type poolParticipant struct {
	media.Participant
	pool         *Pool
	room, member string
	node         *Client
	r            *poolRoom
	events       poolEvents
	gone         bool // guarded by pool.mu
}

// Close implements media.Participant.
func (pp *poolParticipant) Close() {
	pp.Participant.Close()
	pp.pool.leave(pp, false)
}

// poolEvents sees a session's end before its owner does, so that the room
// is forgotten before the owner rejoins it.
type poolEvents struct {
	pp    *poolParticipant
	inner media.Events
}

func (e poolEvents) Answer(sdp string)  { e.inner.Answer(sdp) }
func (e poolEvents) Offer(sdp string)   { e.inner.Offer(sdp) }
func (e poolEvents) Speaker(who string) { e.inner.Speaker(who) }
func (e poolEvents) Closed(err error) {
	e.pp.pool.leave(e.pp, errors.Is(err, media.ErrUnavailable))
	e.inner.Closed(err)
}

// Record implements media.Recorder on the node that holds roomID; a room
// the pool has not placed is an error wrapping media.ErrNoRoom. When that
// node is lost the recording ends with an error wrapping
// media.ErrUnavailable, as the room's sessions do.
func (p *Pool) Record(ctx context.Context, roomID string, sink media.RecordSink) (media.Recording, error) {
	for {
		p.mu.Lock()
		r := p.rooms[roomID]
		switch {
		case r == nil:
			p.mu.Unlock()
			return nil, fmt.Errorf("record room %s: on no node: %w", roomID, media.ErrNoRoom)
		case r.placing != nil:
			ch := r.placing
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("record room %s: %w", roomID, ctx.Err())
			}
			continue
		}
		node := r.node
		p.mu.Unlock()
		return node.Record(ctx, roomID, sink)
	}
}
