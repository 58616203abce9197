package audit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
)

// memStore is an in-memory audit.Storage with the contract's semantics,
// so the log's own logic is tested apart from SQL (store/storetest holds
// the databases to the same behaviour).
type memStore struct {
	mu   sync.Mutex
	rows []audit.Row
	cps  []audit.StoredCheckpoint
}

func (m *memStore) AuditAppend(ctx context.Context, build func(last audit.Row) ([]audit.Row, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var last audit.Row
	if len(m.rows) > 0 {
		last = m.rows[len(m.rows)-1]
	}
	rows, err := build(last)
	if err != nil {
		return err
	}
	m.rows = append(m.rows, rows...)
	return ctx.Err()
}

func (m *memStore) AuditRows(ctx context.Context, from uint64, fn func(audit.Row) error) error {
	m.mu.Lock()
	var rows []audit.Row
	for _, r := range m.rows {
		if r.Seq >= from {
			rows = append(rows, r)
		}
	}
	m.mu.Unlock()
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (m *memStore) AuditCheckpoints(_ context.Context, after uint64, limit int) ([]audit.StoredCheckpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.StoredCheckpoint
	for _, c := range m.cps {
		if c.Size > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memStore) AddAuditCheckpoint(_ context.Context, c audit.StoredCheckpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, found := slices.BinarySearchFunc(m.cps, c.Size, func(s audit.StoredCheckpoint, size uint64) int { return int(s.Size) - int(size) })
	if !found {
		m.cps = slices.Insert(m.cps, i, c)
	}
	return nil
}

func (m *memStore) LatestAuditCheckpoint(context.Context) (audit.StoredCheckpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cps) == 0 {
		return audit.StoredCheckpoint{}, false, nil
	}
	return m.cps[len(m.cps)-1], true, nil
}

// edit changes the stored rows behind the log's back.
func (m *memStore) edit(fn func(rows []audit.Row) []audit.Row) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = fn(m.rows)
}

func (m *memStore) checkpointCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cps)
}

// clock is an injected clock that advances one second per reading unless
// set back.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

const origin = "consult.example/audit"

func newSigner(t testing.TB, name string) *audit.Signer {
	t.Helper()
	skey, _, err := audit.GenerateSigningKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fixture struct {
	store  *memStore
	signer *audit.Signer
	clock  *clock
	log    *audit.Log
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{store: &memStore{}, signer: newSigner(t, origin), clock: newClock()}
	f.log = audit.New(f.store, f.signer, f.clock.now)
	return f
}

func (f *fixture) append(t testing.TB, e audit.Entry) audit.Entry {
	t.Helper()
	if e.Type == "" {
		e.Type, e.Outcome, e.Message = audit.TypeSignIn, audit.Success, "password accepted"
	}
	got, err := f.log.Append(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
