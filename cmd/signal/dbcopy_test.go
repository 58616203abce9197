package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/store/storetest"
)

// TestDBCopyMovesAnInstallationToPostgres runs a clinic on SQLite, moves it
// with `signal db copy`, verifies the audit log on PostgreSQL with `signal
// audit verify`, and starts the server on PostgreSQL, where the session the
// administrator opened before the move still works.
func TestDBCopyMovesAnInstallationToPostgres(t *testing.T) {
	pg := storetest.NewPostgresSchema(t)
	dir := t.TempDir()
	d := startDev(t, dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	sqlite := "sqlite:" + filepath.Join(dir, "signal.db")

	for _, args := range [][]string{
		{"db", "copy", "-from", sqlite},
		{"db", "copy", "-from", sqlite, "-to", sqlite},
		{"db", "move"},
		{"db", "copy", "-from", "sqlite:" + filepath.Join(dir, "mistyped.db"), "-to", pg},
	} {
		if _, err := runTool(t, nil, args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mistyped.db")); err == nil {
		t.Error("a mistyped source was created")
	}
	out, err := runTool(t, map[string]string{"SIGNAL_DATABASE": pg}, "db", "copy", "-from", sqlite)
	if err != nil || !strings.Contains(out, "audit_entries") || !strings.Contains(out, "contents match") {
		t.Fatalf("db copy: %v\n%s", err, out)
	}
	if strings.Contains(out, "Mozilla") || strings.Contains(out, "chief.admin") {
		t.Fatalf("db copy printed row contents:\n%s", out)
	}
	if out, err := runTool(t, nil, "db", "copy", "-from", sqlite, "-to", pg); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second copy into the same target: %v\n%s", err, out)
	}
	out, err = runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir, "-database", pg)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify on PostgreSQL: %v\n%s", err, out)
	}
	if out, err := runTool(t, nil, "keys", "status", "-dev", "-data-dir", dir, "-database", pg); err != nil || !strings.Contains(out, "data key 1") {
		t.Fatalf("keys status on PostgreSQL: %v\n%s", err, out)
	}

	d = startDev(t, dir, "-database", pg)
	defer d.stop()
	if strings.Contains(d.stdout.String(), "/setup/") {
		t.Fatal("the server on PostgreSQL offers to create a first account: the accounts did not arrive")
	}
	resp, err := admin.Get(d.public + "/admin/audit")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "audit log intact") || !strings.Contains(string(page), "totp.enrolled") {
		t.Fatalf("audit page on PostgreSQL = %d:\n%s", resp.StatusCode, page)
	}
}
