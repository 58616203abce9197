package signaling

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/recording"
)

// leaseMargin is taken off a lease's life on the owner's clock, for the
// time a renewal spends on the way to the database.
const leaseMargin = 500 * time.Millisecond

// lease is this replica's hold on one consult.
type lease struct {
	// mu orders acquisition, joins and release, so that no room is made
	// for a lease being given up.
	mu      sync.Mutex
	epoch   atomic.Int64 // 0 when not held
	until   atomic.Int64 // on the cluster's monotonic clock; held before it
	since   atomic.Int64 // when it was acquired, on the same clock
	waiting int          // the lobby count last stored; owned by tend
}

func (c *Cluster) mono() int64 { return int64(time.Since(c.clock0)) }

// holdUntil records a lease at epoch acquired or renewed by a statement
// sent at start.
func (c *Cluster) holdUntil(l *lease, epoch, start int64) {
	l.epoch.Store(epoch)
	l.until.Store(start + int64(c.cfg.LeaseTTL-leaseMargin))
}

// owns returns the epoch at which this replica holds the consult's lease,
// or errNotOwner when the lease may have lapsed: every write a room makes
// goes through it.
func (c *Cluster) owns(consultID string) (int64, error) {
	c.mu.Lock()
	l := c.leases[consultID]
	c.mu.Unlock()
	if l == nil {
		return 0, errNotOwner
	}
	e := l.epoch.Load()
	if e == 0 || c.mono() >= l.until.Load() {
		return 0, errNotOwner
	}
	return e, nil
}

// claim runs local under the consult's lease when this replica owns it,
// acquiring the lease when nobody holds it, and returns the owner.
func (c *Cluster) claim(ctx context.Context, consultID string, local func()) (string, error) {
	for {
		c.mu.Lock()
		l := c.leases[consultID]
		if l == nil {
			l = &lease{}
			c.leases[consultID] = l
		}
		c.mu.Unlock()
		l.mu.Lock()
		c.mu.Lock()
		current := c.leases[consultID] == l
		c.mu.Unlock()
		if !current {
			l.mu.Unlock() // released meanwhile
			continue
		}
		if _, err := c.owns(consultID); err != nil {
			start := c.mono()
			actx, cancel := context.WithTimeout(ctx, c.hub.deps.IOTimeout)
			got, err := c.cfg.Leases.AcquireLease(actx, consultID, c.cfg.Replica, c.cfg.LeaseTTL)
			cancel()
			if err != nil || got.Owner != c.cfg.Replica {
				l.mu.Unlock()
				return got.Owner, err
			}
			c.holdUntil(l, got.Epoch, start)
			l.since.Store(c.mono())
			c.log.Info("consult lease acquired", "consult", consultID, "epoch", got.Epoch)
		}
		local()
		l.mu.Unlock()
		return c.cfg.Replica, nil
	}
}

// tend keeps the replica's standing until ctx ends: its heartbeat and
// leases (renewed together, lost ones evicted) on one loop, which nothing
// slow may hold up, and on another the idle leases released, the lobby
// counts other replicas show, and the tabs and members of replicas that
// died.
func (c *Cluster) tend(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.every(ctx, c.cfg.LeaseTTL/3, c.heartbeat) })
	wg.Go(func() { c.every(ctx, c.cfg.LeaseTTL/3, c.renew) })
	c.every(ctx, time.Second, c.housekeep)
	wg.Wait()
}

// every runs f at once and then every period until ctx ends, each run
// bounded by the period.
func (c *Cluster) every(ctx context.Context, period time.Duration, f func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		fctx, cancel := context.WithTimeout(ctx, period)
		f(fctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat tells the other replicas this one lives. It takes no lock: a
// room busy on a slow write must not make the replica look dead.
func (c *Cluster) heartbeat(ctx context.Context) {
	if err := c.cfg.Bus.Heartbeat(ctx, c.cfg.Replica, c.cfg.LeaseTTL); err != nil {
		c.log.Warn("heartbeat", "err", err)
	}
}

func (c *Cluster) housekeep(ctx context.Context) {
	c.releaseIdle(ctx)
	c.storeWaiting(ctx)
	c.checkPeers(ctx)
}

// tendOnce runs both loops' work once.
func (c *Cluster) tendOnce(ctx context.Context) {
	c.heartbeat(ctx)
	c.renew(ctx)
	c.housekeep(ctx)
	c.work.Wait() // the evictions
}

func (c *Cluster) renew(ctx context.Context) {
	start := c.mono()
	held, err := c.cfg.Leases.RenewLeases(ctx, c.cfg.Replica, c.cfg.LeaseTTL)
	if err != nil {
		c.log.Error("renew consult leases; writes stop when they lapse", "err", err)
		return
	}
	c.mu.Lock()
	leases := make(map[string]*lease, len(c.leases))
	for id, l := range c.leases {
		leases[id] = l
	}
	c.mu.Unlock()
	for id, l := range leases {
		e := l.epoch.Load()
		if e == 0 || l.since.Load() >= start {
			continue // acquired while the renewal ran, which may not have seen it
		}
		if held[id] == e {
			l.until.Store(start + int64(c.cfg.LeaseTTL-leaseMargin))
			continue
		}
		if l.epoch.CompareAndSwap(e, 0) {
			c.log.Warn("consult lease lost to another replica; its tabs reconnect there", "consult", id, "epoch", e)
			// The room's lock may be held by a slow write; renewals go on.
			c.work.Go(func() { c.hub.evict(id) })
		}
	}
}

// releaseIdle gives up the leases of consults whose room is gone.
func (c *Cluster) releaseIdle(ctx context.Context) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.leases))
	for id := range c.leases {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	var idle []string
	for _, id := range ids {
		if c.hub.existing(id) == nil {
			idle = append(idle, id)
		}
	}
	for _, id := range idle {
		if ctx.Err() != nil {
			return // the rest at the next round
		}
		c.release(ctx, id, false)
	}
}

// release gives up the consult's lease when its room is gone, or always
// when all is set.
func (c *Cluster) release(ctx context.Context, id string, all bool) {
	c.mu.Lock()
	l := c.leases[id]
	c.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !all && c.hub.existing(id) != nil {
		return // a tab joined meanwhile
	}
	if e := l.epoch.Swap(0); e != 0 {
		if err := c.cfg.Leases.ReleaseLease(ctx, id, c.cfg.Replica, e); err != nil {
			c.log.Warn("release consult lease; it expires instead", "consult", id, "err", err)
		}
	}
	c.mu.Lock()
	delete(c.leases, id)
	c.mu.Unlock()
}

// storeWaiting stores the lobby counts that changed, for the other
// replicas' waiting-room alerts.
func (c *Cluster) storeWaiting(ctx context.Context) {
	counts := c.hub.Waiting()
	c.mu.Lock()
	leases := make(map[string]*lease, len(c.leases))
	for id, l := range c.leases {
		leases[id] = l
	}
	c.mu.Unlock()
	for id, l := range leases {
		e, n := l.epoch.Load(), counts[id]
		if e == 0 || n == l.waiting {
			continue
		}
		if ctx.Err() != nil {
			return // the rest at the next round
		}
		if err := c.cfg.Leases.SetLeaseWaiting(ctx, id, c.cfg.Replica, e, n); err != nil {
			c.log.Warn("store lobby count", "consult", id, "err", err)
			continue
		}
		l.waiting = n
	}
}

// leave hands every consult of this replica to the others when it stops:
// its heartbeat and leases go first, so that no replica relays to it any
// more and any may take its consults; then relayed members are told to
// reconnect.
func (c *Cluster) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cfg.Bus.Heartbeat(ctx, c.cfg.Replica, 0); err != nil {
		c.log.Warn("withdraw heartbeat", "err", err)
	}
	c.mu.Lock()
	ids := make([]string, 0, len(c.leases))
	for id := range c.leases {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.release(ctx, id, true)
	}
	c.mu.Lock()
	remotes := make([]*remoteConn, 0, len(c.remotes))
	for _, rc := range c.remotes {
		remotes = append(remotes, rc)
	}
	c.mu.Unlock()
	for _, rc := range remotes {
		rc.closeWith(websocket.CloseServiceRestart, "consult moved")
	}
}

// evict drops the consult's room after its lease went to another replica:
// every tab is closed with "service restart", so it reconnects and lands
// on the new owner, and nothing it sends is acted on here.
func (h *Hub) evict(id string) {
	h.mu.Lock()
	r := h.rooms[id]
	delete(h.rooms, id)
	h.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.discarded = true
	for _, m := range r.members {
		m.dropMediaLocked()
		if m.conn != nil {
			closeMoved(m.conn)
		}
	}
	r.members = map[string]*Member{}
}

func closeMoved(c Conn) {
	if cw, ok := c.(interface{ closeWith(int, string) }); ok {
		cw.closeWith(websocket.CloseServiceRestart, "consult moved")
		return
	}
	c.Close()
}

// The fenced collaborators: a room's writes that depend on owning the
// consult happen only while this replica's lease holds.
type (
	fencedChat struct {
		ChatLog
		c *Cluster
	}
	fencedAudit struct {
		Recorder
		c *Cluster
	}
	fencedRecords struct {
		Records
		c *Cluster
	}
	fencedMedia struct {
		MediaNode
		c *Cluster
	}
	// fencedRecorderNode is a fenced media node that also records.
	fencedRecorderNode struct {
		fencedMedia
		rec media.Recorder
	}
	fencedRecordings struct {
		Recordings
		c *Cluster
	}
	clusterAdmissions struct{ c *Cluster }
)

// Record records a consult's room only on the consult's owner.
func (f fencedRecorderNode) Record(ctx context.Context, roomID string, sink media.RecordSink) (media.Recording, error) {
	if _, err := f.c.owns(roomID); err != nil {
		return nil, err
	}
	return f.rec.Record(ctx, roomID, sink)
}

// Start starts a consult's recording only on its owner.
func (f fencedRecordings) Start(ctx context.Context, req recording.StartRequest) (recording.Active, error) {
	if _, err := f.c.owns(req.ConsultID); err != nil {
		return nil, err
	}
	return f.Recordings.Start(ctx, req)
}

func (f fencedChat) AppendChat(ctx context.Context, consultID string, m ChatMessage) (ChatMessage, error) {
	if _, err := f.c.owns(consultID); err != nil {
		return ChatMessage{}, err
	}
	return f.ChatLog.AppendChat(ctx, consultID, m)
}

func (f fencedAudit) RecordSession(ctx context.Context, event, consultID, memberID, message string, fields map[string]string) error {
	if _, err := f.c.owns(consultID); err != nil {
		return err
	}
	return f.Recorder.RecordSession(ctx, event, consultID, memberID, message, fields)
}

func (f fencedRecords) Finish(ctx context.Context, consultID string) error {
	if _, err := f.c.owns(consultID); err != nil {
		return err
	}
	return f.Records.Finish(ctx, consultID)
}

func (f fencedRecords) DenyGuest(ctx context.Context, consultID, guestID string) error {
	if _, err := f.c.owns(consultID); err != nil {
		return err
	}
	return f.Records.DenyGuest(ctx, consultID, guestID)
}

// Join places a member on a media node only on the consult's owner, so a
// consult never lands on two nodes.
func (f fencedMedia) Join(ctx context.Context, roomID, memberID string, events media.Events) (media.Participant, error) {
	if _, err := f.c.owns(roomID); err != nil {
		return nil, err
	}
	return f.MediaNode.Join(ctx, roomID, memberID, events)
}

// Remember stores an admission in the statement that checks the epoch.
func (a clusterAdmissions) Remember(ctx context.Context, consultID, memberID string) error {
	e, err := a.c.owns(consultID)
	if err != nil {
		return err
	}
	return a.c.cfg.Leases.AdmitMember(ctx, consultID, memberID, a.c.cfg.Replica, e)
}

// RememberAll stores admissions in the statement that checks the epoch.
func (a clusterAdmissions) RememberAll(ctx context.Context, consultID string, memberIDs []string) error {
	e, err := a.c.owns(consultID)
	if err != nil {
		return err
	}
	return a.c.cfg.Leases.AdmitMembers(ctx, consultID, memberIDs, a.c.cfg.Replica, e)
}

func (a clusterAdmissions) Forget(ctx context.Context, consultID, memberID string) error {
	e, err := a.c.owns(consultID)
	if err != nil {
		return err
	}
	return a.c.cfg.Leases.ForgetMember(ctx, consultID, memberID, a.c.cfg.Replica, e)
}

func (a clusterAdmissions) Admitted(ctx context.Context, consultID, memberID string, maxAbsence time.Duration) (bool, error) {
	return a.c.cfg.Leases.MemberAdmitted(ctx, consultID, memberID, maxAbsence)
}
