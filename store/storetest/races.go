package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/store"
)

// RunConcurrency runs the suite of writes that several signal processes
// make at once. One *store.DB stands for many processes here: its pool
// hands each goroutine its own connection, which is all another process
// would have.
func RunConcurrency(t *testing.T, open Opener) {
	run(t, open, false, []suiteCase{
		{"ConcurrentMigrationsApplyEachStepOnce", racesMigrate},
		{"SigninFailuresLockAndRestartTheCount", signinSequential},
		{"ConcurrentSigninFailuresAllCount", racesSignin},
		{"ConcurrentChatAppendsGetConsecutiveNumbers", racesChat},
	})
}

func racesMigrate(t *testing.T, db *store.DB) {
	ctx := context.Background()
	ms, err := store.Migrations(db.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	applied := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { applied[i], errs[i] = db.Migrate(ctx) })
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("start %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != len(ms) {
		t.Errorf("%d migrations applied in all, want each of %d once", total, len(ms))
	}
	if v, err := db.SchemaVersion(ctx); err != nil || v != len(ms) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(ms))
	}
}

func signinSequential(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	const max, lockFor = 3, 15 * time.Minute
	steps := []struct {
		at         time.Duration
		wantLocked bool
	}{
		{0, false}, {time.Second, false}, {2 * time.Second, true}, // third failure locks
		{3 * time.Second, false}, {4 * time.Second, false}, // counted again while locked
		{lockFor + 3*time.Second, false}, // the lockout has ended: a fresh count
		{lockFor + 4*time.Second, false},
		{lockFor + 5*time.Second, true},
	}
	for i, s := range steps {
		locked, err := db.RecordSigninFailure(ctx, "alice", t0.Add(s.at), max, lockFor)
		if err != nil || locked != s.wantLocked {
			t.Fatalf("failure %d: locked = %v, %v; want %v", i+1, locked, err, s.wantLocked)
		}
	}
	until, err := db.SigninLockedUntil(ctx, "alice")
	if want := t0.Add(2*lockFor + 5*time.Second); err != nil || !until.Equal(want) {
		t.Fatalf("locked until %v, %v; want %v", until, err, want)
	}
	if err := db.ClearSigninFailures(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if until, err := db.SigninLockedUntil(ctx, "alice"); err != nil || !until.IsZero() {
		t.Fatalf("after clearing: locked until %v, %v", until, err)
	}
}

// racesSignin: 40 guesses at once must count 40. A count kept by reading
// and then writing the row in two statements loses most of them on
// PostgreSQL, and a lockout after max failures never comes.
func racesSignin(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	const guesses = 40
	for _, tt := range []struct {
		max, wantLockouts int
	}{{guesses, 1}, {10, 4}, {guesses + 1, 0}} {
		t.Run(fmt.Sprintf("max%d", tt.max), func(t *testing.T) {
			user := fmt.Sprintf("user-%d", tt.max)
			locks := make([]bool, guesses)
			var wg sync.WaitGroup
			for i := range guesses {
				wg.Go(func() {
					var err error
					if locks[i], err = db.RecordSigninFailure(ctx, user, t0, tt.max, time.Hour); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			n := 0
			for _, l := range locks {
				if l {
					n++
				}
			}
			if n != tt.wantLockouts {
				t.Fatalf("%d concurrent failures with a limit of %d started %d lockouts, want %d", guesses, tt.max, n, tt.wantLockouts)
			}
			// One more failure tells whether all 40 were counted.
			locked, err := db.RecordSigninFailure(ctx, user, t0, tt.max, time.Hour)
			if wantLocked := (guesses+1)%tt.max == 0; err != nil || locked != wantLocked {
				t.Fatalf("failure %d: locked = %v, %v; want %v", guesses+1, locked, err, wantLocked)
			}
		})
	}
}

// racesChat: messages posted at once to one consult, by what could be
// different processes, all get stored, numbered 1..n without a gap.
func racesChat(t *testing.T, db *store.DB) {
	ctx := context.Background()
	migrate(t, db)
	c := seedConsult(t, db, "c_race")
	const writers, each = 8, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var err error
				if w%4 == 0 && i == 0 {
					d := store.Document{ID: fmt.Sprintf("d_%d", w), ConsultID: c.ID, MemberID: "m", NameEnc: []byte("n"),
						ContentType: "application/pdf", Size: 1, DataEnc: []byte("x"), CreatedAt: t0}
					_, err = db.ShareDocument(ctx, d, store.DocumentQuota{}, chatBuilder(c.ID, w, i, d.ID))
				} else {
					_, err = db.AppendNextChat(ctx, c.ID, chatBuilder(c.ID, w, i, ""))
				}
				if err != nil {
					t.Errorf("writer %d message %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rows, err := db.ChatRows(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != writers*each {
		t.Fatalf("%d messages stored, want %d", len(rows), writers*each)
	}
	for i, r := range rows {
		if r.Seq != int64(i+1) || string(r.NameEnc) != fmt.Sprintf("seq %d", r.Seq) {
			t.Fatalf("message %d: seq %d built as %q", i, r.Seq, r.NameEnc)
		}
	}
}

// chatBuilder makes a row that records, in place of sealed bytes, the
// number it was built for.
func chatBuilder(consultID string, w, i int, docID string) func(int64) (store.ChatRow, error) {
	return func(seq int64) (store.ChatRow, error) {
		return store.ChatRow{ConsultID: consultID, Seq: seq, MemberID: fmt.Sprintf("m_%d", w), NameEnc: fmt.Appendf(nil, "seq %d", seq),
			TextEnc: fmt.Appendf(nil, "writer %d message %d", w, i), CreatedAt: t0, DocumentID: docID}, nil
	}
}

// seedConsult stores a clinician and a consult with one link.
func seedConsult(t *testing.T, db *store.DB, id string) store.Consult {
	t.Helper()
	ctx := context.Background()
	u := store.User{ID: "u_" + id, Username: "doc-" + id, Role: "clinician", PasswordHash: "$argon2id$test", CreatedAt: t0, ActivatedAt: t0, PasswordChangedAt: t0}
	if err := db.CreateUser(ctx, u, []byte("activate-"+id), t0.Add(time.Hour)); err != nil && !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	c := store.Consult{ID: id, OwnerID: u.ID, TitleEnc: []byte("sealed title"), CreatedAt: t0}
	l := store.ConsultLink{ID: "l_" + id, ConsultID: id, TokenHash: []byte("hash-" + id), TokenEnc: []byte("sealed-" + id),
		Label: "patient", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateConsult(ctx, c, l); err != nil {
		t.Fatal(err)
	}
	return c
}
