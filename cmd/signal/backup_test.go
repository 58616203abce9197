package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/audit"
)

// TestBackupOfARunningServerRestoresAndVerifies backs up a server while it
// runs, restores the backup into a new data directory, and checks the
// restored audit log and data keys with the operator's commands.
func TestBackupOfARunningServerRestoresAndVerifies(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	defer d.stop()
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	// A checkpoint in the external file, as a server writes every interval.
	if out, err := runTool(t, nil, "audit", "export", "-dev", "-data-dir", dir, "-out", filepath.Join(t.TempDir(), "x.json")); err != nil {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	checkpoints, err := os.ReadFile(filepath.Join(dir, "audit-checkpoints", audit.CheckpointFileName))
	if err != nil || len(checkpoints) == 0 {
		t.Fatalf("no external checkpoint to back up: %v", err)
	}

	file := filepath.Join(t.TempDir(), "signal.backup")
	out, err := runTool(t, nil, "backup", "-dev", "-data-dir", dir, "-to", file)
	if err != nil || !strings.Contains(out, "encrypted for master key") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("SQLite format 3")) || bytes.Contains(raw, []byte("chief.admin")) {
		t.Fatal("the backup file holds readable database content")
	}
	if _, err := runTool(t, nil, "backup", "-dev", "-data-dir", dir, "-to", file); err == nil {
		t.Fatal("a second backup replaced the first")
	}

	key, err := os.ReadFile(filepath.Join(dir, "dev-master.key"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIGNAL_MASTER_KEY": string(key)}
	restored := filepath.Join(t.TempDir(), "restored")
	out, err = runTool(t, env, "restore", "-from", file, "-data-dir", restored)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(restored, "audit-checkpoints", audit.CheckpointFileName))
	if err != nil || !bytes.Equal(got, checkpoints) {
		t.Fatalf("restored checkpoints differ from the backed-up ones: %v", err)
	}
	auditKey := "-audit-key-file=" + filepath.Join(dir, "audit-signing.key")
	out, err = runTool(t, env, "audit", "verify", "-data-dir", restored, auditKey)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify of the restored data: %v\n%s", err, out)
	}
	out, err = runTool(t, env, "keys", "status", "-data-dir", restored)
	if err != nil || !strings.Contains(out, "data key 1") || !strings.Contains(out, "active") {
		t.Fatalf("keys status of the restored data: %v\n%s", err, out)
	}
	if _, err := runTool(t, env, "restore", "-from", file, "-data-dir", restored); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over restored data: %v", err)
	}
	// A server on the restored directory knows the administrator's session.
	r := startDev(t, restored, "-master-key", strings.TrimSpace(string(key)), auditKey)
	defer r.stop()
	if strings.Contains(r.stdout.String(), "/setup/") {
		t.Fatal("the restored server offers to create a first account")
	}
	c := r.staffClient(t) // trusts the restored server's own certificate
	c.Jar = admin.Jar
	resp, err := c.Get(r.public + "/admin/audit")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "audit log intact") || !strings.Contains(string(page), "totp.enrolled") {
		t.Fatalf("audit page of the restored server = %d:\n%s", resp.StatusCode, page)
	}
}

// TestDamagedBackupsRestoreNothing checks that a backup that was altered,
// cut short, or made under another master key is refused with a clear error
// and leaves the data directory empty.
func TestDamagedBackupsRestoreNothing(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "signal.backup")
	if out, err := runTool(t, nil, "backup", "-dev", "-data-dir", dir, "-to", file); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "dev-master.key"))
	altered := bytes.Clone(good)
	altered[len(altered)/2] ^= 1
	for _, tc := range []struct {
		name, key string
		backup    []byte
		want      string
	}{
		{"altered", string(key), altered, "altered"},
		{"truncated", string(key), good[:len(good)-20], "truncated"},
		{"another master key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", good, "encrypted for master key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.backup")
			if err := os.WriteFile(bad, tc.backup, 0o600); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "data")
			_, err := runTool(t, map[string]string{"SIGNAL_MASTER_KEY": tc.key}, "restore", "-from", bad, "-data-dir", target)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(target); len(entries) != 0 {
				t.Fatalf("a refused backup left %v in the data directory", entries)
			}
		})
	}
}

func TestBackupRefusesWhatItCannotCopy(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "-dev", "-data-dir", empty}, "usage"},
		{[]string{"backup", "-dev", "-data-dir", empty, "-database", "postgres://openconsult@127.0.0.1/openconsult", "-to", filepath.Join(empty, "b")}, "pg_dump"},
		{[]string{"backup", "-dev", "-data-dir", empty, "-to", filepath.Join(empty, "b")}, "development master key"},
		{[]string{"backup", "-data-dir", empty, "-to", filepath.Join(empty, "b")}, "give the master key"},
		{[]string{"restore", "-data-dir", empty, "-from", filepath.Join(empty, "b")}, "give the master key"},
		{[]string{"restore", "-data-dir", empty}, "usage"},
	} {
		if _, err := runTool(t, nil, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("refused commands left %v", entries)
	}
}
