package consult

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/openconsult/openconsult/signaling"
)

// A room writes chat under a deadline shorter than SQLite's busy timeout;
// the deadline must really end the wait for another writer's lock, or a
// room would stall for the whole busy timeout.
func TestChatWriteGivesUpAtItsDeadlineWhileAnotherWriterHoldsTheDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, _, _ := newServiceAt(t, path)
	v, _ := s.Create(ctx, "u_doc", "", false)
	other, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.Begin() // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.AppendChat(c, v.ID, signaling.ChatMessage{From: "u_doc", Name: "Dr Who", Text: "hello"})
	t.Logf("chat write with a 300ms deadline returned after %v", time.Since(start).Round(time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("chat write while the database is locked: %v, want the deadline", err)
	}
}
