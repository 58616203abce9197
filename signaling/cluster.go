package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/media"
)

// Several replicas of the signal server share the live consults: each live
// consult has one owning replica, which runs its Room as a single server
// does. A replica that receives a tab of a consult it does not own keeps
// the tab's WebSocket and relays it: frames from the tab go to the owner
// over the Bus, the owner's room treats the member as local through a
// remoteConn, and what the room sends comes back over the Bus to the
// socket. HTTP actions on a live consult (end, withdraw a link, announce a
// document) go to the owner the same way. Ownership is a lease in the
// database with an epoch; the owner renews its leases together and stops
// writing for a consult the moment its lease may have lapsed.

// Lease is who owns a live consult, as the LeaseStore says.
type Lease struct {
	Owner string
	Epoch int64
	Live  bool
}

// LeaseStore keeps the leases and admissions of live consults in the
// database every replica shares.
type LeaseStore interface {
	AcquireLease(ctx context.Context, consultID, replica string, ttl time.Duration) (Lease, error)
	LeaseOf(ctx context.Context, consultID string) (Lease, error)
	RenewLeases(ctx context.Context, replica string, ttl time.Duration) (map[string]int64, error)
	ReleaseLease(ctx context.Context, consultID, replica string, epoch int64) error
	SetLeaseWaiting(ctx context.Context, consultID, replica string, epoch int64, waiting int) error
	LeaseWaiting(ctx context.Context) (map[string]int, error)
	AdmitMember(ctx context.Context, consultID, memberID, replica string, epoch int64) error
	AdmitMembers(ctx context.Context, consultID string, memberIDs []string, replica string, epoch int64) error
	ForgetMember(ctx context.Context, consultID, memberID, replica string, epoch int64) error
	MemberAdmitted(ctx context.Context, consultID, memberID string, maxAbsence time.Duration) (bool, error)
}

// Bus carries messages between replicas and tells which replicas live.
type Bus interface {
	// Publish sends data[i] to replica to[i] ("" for every replica), in
	// their order.
	Publish(ctx context.Context, to []string, data [][]byte) error
	// Receive passes each message for replica, or for every replica, to
	// deliver with the name of the replica that sent it, until ctx ends.
	// It delivers only messages a replica sent, each once: the bus
	// authenticates them. After a break in the subscription, during which
	// messages may have been lost, it calls resubscribed.
	Receive(ctx context.Context, replica string, deliver func(from string, data []byte), resubscribed func()) error
	// Heartbeat says replica lives for ttl; ttl 0 says it stopped.
	Heartbeat(ctx context.Context, replica string, ttl time.Duration) error
	// Alive reports which of the replicas sent a heartbeat within its ttl.
	Alive(ctx context.Context, replicas []string) (map[string]bool, error)
}

// ClusterConfig configures a replica.
type ClusterConfig struct {
	Replica string // unique per process
	Leases  LeaseStore
	Bus     Bus
	// LeaseTTL is how long a lease and a heartbeat hold without renewal;
	// 0 means 6 s. A dead owner's consults move after at most about this.
	LeaseTTL time.Duration
	Log      *slog.Logger
}

// errNotOwner is what a fenced write returns on a replica that may no
// longer own the consult.
var errNotOwner = errors.New("this replica does not own the consult")

// Cluster is one replica's share of the live consults. It offers what the
// site and the account service need from the live rooms, as Hub does.
type Cluster struct {
	hub    *Hub
	cfg    ClusterConfig
	log    *slog.Logger
	out    *outbox
	clock0 time.Time // origin of the monotonic lease clock
	work   sync.WaitGroup

	mu      sync.Mutex
	leases  map[string]*lease
	remotes map[string]*remoteConn // "replica/conn" -> a member's tab on another replica
	proxies map[string]*proxy      // conn id -> a tab this replica relays
	calls   map[string]chan string // call id -> the owner's answer
	waiting map[string]int         // lobby counts of other replicas' consults
	waitAt  time.Time
}

// NewCluster returns the replica's share; Run must be called.
func NewCluster(deps RoomDeps, cfg ClusterConfig) *Cluster {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 6 * time.Second
	}
	c := &Cluster{cfg: cfg, log: cfg.Log, clock0: time.Now(), leases: map[string]*lease{},
		remotes: map[string]*remoteConn{}, proxies: map[string]*proxy{}, calls: map[string]chan string{}}
	c.out = newOutbox(cfg.Bus, cfg.Log)
	deps.Chat = fencedChat{deps.Chat, c}
	deps.Audit = fencedAudit{deps.Audit, c}
	if deps.Records != nil {
		deps.Records = fencedRecords{deps.Records, c}
	}
	if rec, ok := deps.Media.(media.Recorder); ok {
		deps.Media = fencedRecorderNode{fencedMedia{deps.Media, c}, rec}
	} else if deps.Media != nil {
		deps.Media = fencedMedia{deps.Media, c}
	}
	if deps.Recordings != nil {
		deps.Recordings = fencedRecordings{deps.Recordings, c}
	}
	deps.Admissions = clusterAdmissions{c}
	c.hub = NewHub(deps)
	return c
}

// Replica is this replica's name on the bus and in the leases.
func (c *Cluster) Replica() string { return c.cfg.Replica }

// Run serves the replica's share until ctx is done; then it closes its
// tabs, sends the members of its consults to another replica and
// releases its leases, so that the consults move at once.
func (c *Cluster) Run(ctx context.Context) {
	loops, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { c.out.run(loops) })
	wg.Go(func() { c.receive(loops) })
	wg.Go(func() { c.tend(ctx) })
	rooms, stopRooms := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { c.hub.Run(rooms) })
	<-ctx.Done()
	// The consults are released before the tabs close, so that the tabs
	// reconnect to replicas that can take them at once.
	c.leave()
	stopRooms()
	c.work.Wait()
	stop()
	wg.Wait()
}

// Serve takes a tab's upgraded WebSocket: the room serves it when this
// replica owns the consult (taking the lease when nobody holds it), else
// the tab is relayed to the owner. While a dead owner's lease runs out,
// the tab waits, then lands here or on whichever replica took it.
func (c *Cluster) Serve(ws *websocket.Conn, consultID string, p Participant) {
	if !c.hub.socks.run(func(ctx context.Context) { c.place(ctx, ws, consultID, p) }) {
		closeSocket(ws, websocket.CloseGoingAway, "server shutting down")
	}
}

func (c *Cluster) place(ctx context.Context, ws *websocket.Conn, consultID string, p Participant) {
	deadline := time.Now().Add(c.cfg.LeaseTTL + 2*time.Second)
	for {
		owner, err := c.claim(ctx, consultID, func() { c.hub.Serve(ws, consultID, p) })
		if err == nil && owner == c.cfg.Replica {
			return
		}
		if err == nil && c.alive(ctx, owner) {
			c.proxy(ctx, ws, consultID, p, owner)
			return
		}
		if err != nil {
			c.log.Warn("find the consult's owner", "consult", consultID, "err", err)
		}
		if time.Now().After(deadline) {
			closeSocket(ws, websocket.CloseTryAgainLater, "consult unavailable")
			return
		}
		select {
		case <-ctx.Done():
			closeSocket(ws, websocket.CloseGoingAway, "server shutting down")
			return
		case <-time.After(c.cfg.LeaseTTL / 6):
		}
	}
}

func closeSocket(ws *websocket.Conn, code int, reason string) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeWait))
	_ = ws.Close()
}

// alive reports whether replica sends heartbeats.
func (c *Cluster) alive(ctx context.Context, replica string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok, err := c.cfg.Bus.Alive(ctx, []string{replica})
	return err == nil && ok[replica]
}

// EndConsult ends the consult on its owner, this replica when nobody owns
// it, and returns when the owner has.
func (c *Cluster) EndConsult(ctx context.Context, consultID, by string) error {
	var local error
	owner, err := c.claim(ctx, consultID, func() { local = c.hub.EndConsult(ctx, consultID, by) })
	switch {
	case err != nil:
		return err
	case owner == c.cfg.Replica:
		return local
	}
	return c.call(ctx, owner, wire{Kind: "end", Consult: consultID, Text: by})
}

// CloseLink takes the guests of a withdrawn link out of the live room, on
// whichever replica owns it. It counts only those it took out here.
func (c *Cluster) CloseLink(consultID, linkID string) int {
	if _, err := c.owns(consultID); err == nil {
		return c.hub.CloseLink(consultID, linkID)
	}
	if owner := c.liveOwner(consultID); owner != "" {
		c.send(owner, wire{Kind: "closelink", Consult: consultID, Text: linkID}, nil)
	}
	return 0
}

// CloseAccount takes the account out of every live consult on every
// replica; it counts the members it took out here.
func (c *Cluster) CloseAccount(userID string) int {
	c.send("", wire{Kind: "account", Text: userID}, nil)
	return c.hub.CloseAccount(userID)
}

// Announce sends a document's chat message to the consult's members, on
// the replica that owns it.
func (c *Cluster) Announce(consultID string, msg ChatMessage) {
	if _, err := c.owns(consultID); err == nil {
		c.hub.Announce(consultID, msg)
		return
	}
	if owner := c.liveOwner(consultID); owner != "" {
		c.send(owner, wire{Kind: "announce", Consult: consultID}, encode(msg))
	}
}

// Admitted reports whether the member is admitted to the live consult:
// the room says so here, the stored admissions elsewhere.
func (c *Cluster) Admitted(consultID, memberID string) bool {
	if _, err := c.owns(consultID); err == nil {
		return c.hub.Admitted(consultID, memberID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.deps.IOTimeout)
	defer cancel()
	ok, err := c.cfg.Leases.MemberAdmitted(ctx, consultID, memberID, AdmissionAbsence)
	if err != nil {
		c.log.Error("read admission", "consult", consultID, "err", err)
	}
	return ok
}

// Waiting returns the lobby counts of every live consult: this replica's
// from its rooms, the others' as their owners last stored them (at most a
// lease renewal old).
func (c *Cluster) Waiting() map[string]int {
	out := c.hub.Waiting()
	c.mu.Lock()
	stale := time.Since(c.waitAt) >= time.Second
	c.mu.Unlock()
	if stale {
		ctx, cancel := context.WithTimeout(context.Background(), c.hub.deps.IOTimeout)
		w, err := c.cfg.Leases.LeaseWaiting(ctx)
		cancel()
		c.mu.Lock()
		if err == nil {
			c.waiting, c.waitAt = w, time.Now()
		} else {
			c.log.Warn("waiting counts of other replicas", "err", err)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.waiting {
		if l := c.leases[id]; l == nil || l.epoch.Load() == 0 {
			if _, ok := out[id]; !ok {
				out[id] = n
			}
		}
	}
	return out
}

// liveOwner returns the replica with a live lease on the consult, or "".
func (c *Cluster) liveOwner(consultID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.deps.IOTimeout)
	defer cancel()
	l, err := c.cfg.Leases.LeaseOf(ctx, consultID)
	if err != nil {
		c.log.Error("read lease", "consult", consultID, "err", err)
		return ""
	}
	if !l.Live {
		return ""
	}
	return l.Owner
}

// callTimeout bounds how long an action waits for the owner's answer.
const callTimeout = 10 * time.Second

// call asks owner to act and waits for its answer.
func (c *Cluster) call(ctx context.Context, owner string, w wire) error {
	w.Call = newConnID()
	answer := make(chan string, 1)
	c.mu.Lock()
	c.calls[w.Call] = answer
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls, w.Call)
		c.mu.Unlock()
	}()
	if !c.send(owner, w, nil) {
		return errors.New("bus queue full")
	}
	t := time.NewTimer(callTimeout)
	defer t.Stop()
	select {
	case msg := <-answer:
		if msg != "" {
			return fmt.Errorf("%s on replica %s: %s", w.Kind, owner, msg)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s: replica %s did not answer", w.Kind, owner)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// participantWire is a relayed tab's participant as its replica
// authenticated it; the session stays there.
type participantWire struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Host  bool   `json:"host"`
	Link  string `json:"link"`
	Check string `json:"check"`
}

func (p participantWire) participant() Participant {
	return Participant{ID: p.ID, Name: p.Name, Kind: p.Kind, Host: p.Host, Link: p.Link, Check: p.Check}
}

func toWire(p Participant) []byte {
	b, _ := json.Marshal(participantWire{ID: p.ID, Name: p.Name, Kind: p.Kind, Host: p.Host, Link: p.Link, Check: p.Check})
	return b
}
