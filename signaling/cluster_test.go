package signaling

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openconsult/openconsult/internal/eventually"
	"github.com/openconsult/openconsult/media"
	"github.com/openconsult/openconsult/signaling/redisbus"
	"github.com/openconsult/openconsult/site/redislimit/redistest"
	"github.com/openconsult/openconsult/store"
	"github.com/openconsult/openconsult/store/storetest"
)

// storeLeases adapts the store to LeaseStore, as cmd/signal does.
type storeLeases struct{ *store.DB }

func (s storeLeases) AcquireLease(ctx context.Context, id, replica string, ttl time.Duration) (Lease, error) {
	l, err := s.DB.AcquireLease(ctx, id, replica, ttl)
	return Lease(l), err
}

func (s storeLeases) LeaseOf(ctx context.Context, id string) (Lease, error) {
	l, err := s.DB.LeaseOf(ctx, id)
	return Lease(l), err
}

// clusterFixture is replicas of one PostgreSQL database and one Redis.
type clusterFixture struct {
	t       testing.TB
	db      *store.DB
	redis   *redis.Client
	prefix  string
	busKey  []byte
	consult string
}

func newClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	_, client, prefix := redistest.Open(t)
	db := storetest.OpenPostgres(t)
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := db.CreateUser(ctx, store.User{ID: "u_doc", Username: "u_doc", Role: "clinician", PasswordHash: "!", CreatedAt: at}, []byte("activation"), at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := store.Consult{ID: "c_1", OwnerID: "u_doc", CreatedAt: at}
	l := store.ConsultLink{ID: "l_1", ConsultID: c.ID, TokenHash: []byte("hash"), TokenEnc: []byte("sealed"), Label: "patient", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := db.CreateConsult(ctx, c, l); err != nil {
		t.Fatal(err)
	}
	return &clusterFixture{t: t, db: db, redis: client, prefix: prefix, busKey: bytes.Repeat([]byte{7}, 32), consult: c.ID}
}

// replica returns a replica with in-memory chat, audit and records (test
// doubles of room_test.go) and the fixture's leases and bus. Its Run is
// not started: the test drives it.
func (f *clusterFixture) replica(name string, ttl time.Duration, chat *memChat, audit *auditLog) *Cluster {
	bus, err := redisbus.New(f.redis, redisbus.Config{Prefix: f.prefix, Replica: name, Key: f.busKey})
	if err != nil {
		f.t.Fatal(err)
	}
	return NewCluster(RoomDeps{Chat: chat, Audit: audit, Records: &memRecords{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Grace: time.Minute}, ClusterConfig{Replica: name, Leases: storeLeases{f.db}, Bus: bus, LeaseTTL: ttl,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// join joins a tab to the consult on c, which must own it or take it.
func join(t *testing.T, c *Cluster, consultID string, p Participant) (*Room, *Member, *tab) {
	t.Helper()
	tb := &tab{}
	var r *Room
	var m *Member
	var err error
	owner, cerr := c.claim(context.Background(), consultID, func() { r, m, err = c.hub.Join(consultID, p, tb) })
	if cerr != nil || err != nil || owner != c.Replica() {
		t.Fatalf("join on %s: owner %q, %v, %v", c.Replica(), owner, cerr, err)
	}
	return r, m, tb
}

// A replica whose lease lapsed (it stalled and could not renew) writes
// nothing more for the consult: its chat and admissions are refused. The
// replica that takes the consult over lets the admitted guest back in
// without the lobby, and the stale owner, once it learns, closes its tabs
// so that they reconnect to the new owner.
func TestStaleOwnerStopsWritingAndAdmissionsSurviveTakeover(t *testing.T) {
	f := newClusterFixture(t)
	const ttl = 1500 * time.Millisecond
	chatA, chatB := &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}, &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}
	a := f.replica("a", ttl, chatA, &auditLog{})
	auditB := &auditLog{}
	b := f.replica("b", ttl, chatB, auditB)

	rA, host, hostTab := join(t, a, f.consult, Participant{ID: "u_doc", Name: "Dr", Kind: "clinician", Host: true})
	_, guest, guestTab := join(t, a, f.consult, Participant{ID: "g_1", Name: "Pat", Kind: "guest"})
	rA.Handle(host, msg("admit", "member", guest.ID))
	if ok, err := f.db.MemberAdmitted(context.Background(), f.consult, "g_1", time.Hour); !ok || err != nil {
		t.Fatalf("admission not stored: %v, %v", ok, err)
	}
	rA.Handle(host, msg("chat", "text", "before"))
	if n := len(chatA.msgs[f.consult]); n != 1 {
		t.Fatalf("chat on the owner: %d messages", n)
	}

	// a stalls: it renews nothing, and once its lease may have lapsed it
	// refuses to write, before anyone can take the consult.
	eventually.True(t, 10*time.Second, "a's lease to lapse", func() bool { _, err := a.owns(f.consult); return err != nil })
	hostTab.take()
	rA.Handle(host, msg("chat", "text", "after the lease lapsed"))
	if n := len(chatA.msgs[f.consult]); n != 1 {
		t.Fatalf("the stale owner appended chat: %d messages", n)
	}
	if e := hostTab.last("error"); e == nil || e["code"] != "internal" {
		t.Fatalf("the host was not told the chat failed: %v", hostTab.types())
	}

	// b takes the consult over; the guest comes back admitted.
	var readmitted []string
	eventually.True(t, 10*time.Second, "b to take the lease", func() bool {
		owner, err := b.claim(context.Background(), f.consult, func() {})
		return err == nil && owner == "b"
	})
	_, g2, tab2 := join(t, b, f.consult, Participant{ID: "g_1", Name: "Pat", Kind: "guest"})
	if !g2.admitted || !slices.Contains(tab2.types(), "admitted") {
		t.Fatal("the guest went back to the lobby after the takeover")
	}
	for _, e := range auditB.events {
		if strings.HasPrefix(e, EventAccepted) {
			readmitted = append(readmitted, e)
		}
	}
	if len(readmitted) != 1 {
		t.Fatalf("audit on b = %v, want one readmission", auditB.events)
	}

	// a learns at its next renewal and closes its tabs.
	a.tendOnce(context.Background())
	if !hostTab.closed || !guestTab.closed {
		t.Fatal("the stale owner kept its tabs open")
	}
	if a.hub.existing(f.consult) != nil {
		t.Fatal("the stale owner kept the room")
	}
}

// A replica that stops hands its consults over at once: another replica
// takes the lease without waiting for it to expire, and sees the stopped
// replica as gone.
func TestStoppingReplicaReleasesItsConsults(t *testing.T) {
	f := newClusterFixture(t)
	chat := &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}
	a := f.replica("a", time.Minute, chat, &auditLog{})
	b := f.replica("b", time.Minute, chat, &auditLog{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	join(t, a, f.consult, Participant{ID: "u_doc", Name: "Dr", Kind: "clinician", Host: true})
	eventually.True(t, 10*time.Second, "a's heartbeat", func() bool { return b.alive(context.Background(), "a") })
	if owner, err := b.claim(context.Background(), f.consult, func() {}); err != nil || owner != "a" {
		t.Fatalf("owner seen from b = %q, %v; want a", owner, err)
	}
	stop()
	<-done
	if b.alive(context.Background(), "a") {
		t.Fatal("the stopped replica still counts as alive")
	}
	if owner, err := b.claim(context.Background(), f.consult, func() {}); err != nil || owner != "b" {
		t.Fatalf("owner after a stopped = %q, %v; want b at once", owner, err)
	}
}

// The clinicians' waiting-room alerts on any replica count the lobbies of
// consults another replica owns, and an account closed on one replica is
// taken out of consults the others own.
func TestLobbyCountsAndClosedAccountsReachEveryReplica(t *testing.T) {
	f := newClusterFixture(t)
	chat := &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}
	a := f.replica("a", time.Minute, chat, &auditLog{})
	b := f.replica("b", time.Minute, chat, &auditLog{})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range []*Cluster{a, b} {
		wg.Go(func() { c.Run(ctx) })
	}
	defer wg.Wait()
	defer stop()

	_, _, hostTab := join(t, a, f.consult, Participant{ID: "u_doc", Name: "Dr", Kind: "clinician", Host: true})
	join(t, a, f.consult, Participant{ID: "g_1", Name: "Pat", Kind: "guest"})
	eventually.True(t, 10*time.Second, "b to count a's lobby", func() bool { return b.Waiting()[f.consult] == 1 })

	eventually.True(t, 10*time.Second, "both replicas subscribed", func() bool {
		return a.alive(context.Background(), "b") && b.alive(context.Background(), "a")
	})
	// The subscription may lag the heartbeat: close until a hears it.
	eventually.True(t, 10*time.Second, "the account taken out on a", func() bool {
		b.CloseAccount("u_doc")
		return hostTab.last(CloseRevoked) != nil && hostTab.closed
	})
}

// A replica's fenced media node still records when the node does, so that
// consults on several replicas can be recorded.
func TestFencedMediaNodeKeepsRecording(t *testing.T) {
	for _, tt := range []struct {
		name string
		node MediaNode
		want bool
	}{{"recording node", recordingNode{}, true}, {"plain node", plainNode{}, false}} {
		c := NewCluster(RoomDeps{Chat: &memChat{}, Audit: &auditLog{}, Media: tt.node, Log: slog.New(slog.DiscardHandler)},
			ClusterConfig{Replica: "a", Log: slog.New(slog.DiscardHandler)})
		_, ok := c.hub.deps.Media.(media.Recorder)
		if ok != tt.want {
			t.Errorf("%s: fenced node records = %v, want %v", tt.name, ok, tt.want)
		}
		if ok {
			if _, err := c.hub.deps.Media.(media.Recorder).Record(context.Background(), "c_1", nil); err == nil {
				t.Errorf("%s: a replica that does not own the consult recorded it", tt.name)
			}
		}
	}
}

// plainNode and recordingNode are test doubles of media nodes.
type plainNode struct{}

func (plainNode) Join(context.Context, string, string, media.Events) (media.Participant, error) {
	return nil, errors.New("test double")
}

type recordingNode struct{ plainNode }

func (recordingNode) Record(context.Context, string, media.RecordSink) (media.Recording, error) {
	return nil, nil
}

// Messages a client of the Redis publishes without the bus key (end the
// consult, take an account out, relay a tab's frame) change nothing on
// the replica that owns the consult, while a genuine one from another
// replica, published after them, acts.
func TestForgedBusMessagesHaveNoEffect(t *testing.T) {
	f := newClusterFixture(t)
	chat := &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}
	a := f.replica("a", time.Minute, chat, &auditLog{})
	b := f.replica("b", time.Minute, chat, &auditLog{})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range []*Cluster{a, b} {
		wg.Go(func() { c.Run(ctx) })
	}
	defer wg.Wait()
	defer stop()
	r, _, hostTab := join(t, a, f.consult, Participant{ID: "u_doc", Name: "Dr", Kind: "clinician", Host: true})
	_, _, otherTab := join(t, a, f.consult, Participant{ID: "u_other", Name: "Dr Two", Kind: "clinician"})
	all, toA := f.prefix+"bus:all", f.prefix+"bus:a"
	eventually.True(t, 10*time.Second, "a to subscribe", func() bool {
		n, err := f.redis.PubSubNumSub(context.Background(), all, toA).Result()
		return err == nil && n[all] >= 1 && n[toA] >= 1
	})
	intruder, err := redisbus.New(f.redis, redisbus.Config{Prefix: f.prefix, Replica: "b", Key: bytes.Repeat([]byte{8}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ channel, msg string }{
		{all, `{"k":"account","f":"b","t":"u_doc"}` + "\n"},
		{toA, `{"k":"end","f":"b","r":"` + f.consult + `","q":"x","t":"u_doc"}` + "\n"},
		{toA, `{"k":"closelink","f":"b","r":"` + f.consult + `","t":"l_1"}` + "\n"},
	} {
		if err := f.redis.Publish(context.Background(), m.channel, m.msg).Err(); err != nil {
			t.Fatal(err)
		}
		if err := intruder.Publish(context.Background(), []string{strings.TrimPrefix(m.channel, f.prefix+"bus:")}, [][]byte{[]byte(m.msg)}); err != nil {
			t.Fatal(err)
		}
	}
	b.CloseAccount("u_other")
	eventually.True(t, 10*time.Second, "the genuine message to act", func() bool { return otherTab.isClosed() })
	if hostTab.isClosed() || a.hub.existing(f.consult) != r {
		t.Fatal("a forged bus message acted on the consult")
	}
}

// The owner dates anew its connected members' admissions through the
// statement that checks its lease: all of them at once while it owns the
// consult, none once its lease lapsed.
func TestOwnerRedatesAdmissionsUnderItsLease(t *testing.T) {
	f := newClusterFixture(t)
	ctx := context.Background()
	a := f.replica("a", 1500*time.Millisecond, &memChat{msgs: map[string][]ChatMessage{}, now: time.Now}, &auditLog{})
	r, host, _ := join(t, a, f.consult, Participant{ID: "u_doc", Name: "Dr", Kind: "clinician", Host: true})
	members := []string{"u_doc", "g_1", "g_2", "g_3"}
	for _, id := range members[1:] {
		_, g, _ := join(t, a, f.consult, Participant{ID: id, Name: "Pat", Kind: "guest"})
		r.Handle(host, msg("admit", "member", g.ID))
	}
	epoch, err := a.owns(f.consult)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() []string {
		t.Helper()
		var got []string
		for _, id := range members {
			ok, err := f.db.MemberAdmitted(ctx, f.consult, id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				got = append(got, id)
			}
		}
		return got
	}
	forgetAll := func() {
		t.Helper()
		for _, id := range members {
			if err := f.db.ForgetMember(ctx, f.consult, id, "a", epoch); err != nil {
				t.Fatal(err)
			}
		}
	}
	forgetAll()
	a.hub.sweep()
	if got := stored(); !slices.Equal(got, members) {
		t.Fatalf("admissions stored again by the owner: %v, want %v", got, members)
	}

	forgetAll()
	eventually.True(t, 10*time.Second, "a's lease to lapse", func() bool { _, err := a.owns(f.consult); return err != nil })
	r.mu.Lock()
	r.admissionsDated = time.Time{} // due again
	r.mu.Unlock()
	a.hub.sweep()
	if got := stored(); len(got) != 0 {
		t.Fatalf("a stale owner stored admissions again: %v", got)
	}
}
