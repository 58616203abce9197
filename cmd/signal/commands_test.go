package main

import (
	"context"
	"database/sql"
	"html"
	"regexp"

	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openconsult/openconsult/audit"
)

func runTool(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
	return out.String(), err
}

func TestAuditVerifyAndExportCommands(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	admin := signInHTTP(t, d, "chief.admin", "a long admin passphrase") // audited sign-in and enrollment

	// The administrators' page shows the log, filters it and exports it.
	resp, err := admin.Get(d.public + "/admin/audit?type=totp.")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "audit log intact") || !strings.Contains(string(page), "totp.enrolled") || strings.Contains(string(page), ">signin<") {
		t.Fatalf("audit page = %d:\n%s", resp.StatusCode, page)
	}
	resp, err = admin.PostForm(d.public+"/admin/audit/export", map[string][]string{"format": {"json"}})
	if err != nil {
		t.Fatal(err)
	}
	pageKey := regexp.MustCompile(`id="audit-key">([^<]+)<`).FindStringSubmatch(string(page))[1]
	rep, err := audit.VerifyExport(resp.Body, html.UnescapeString(pageKey))
	resp.Body.Close()
	if err != nil || !rep.OK || rep.Entries < 3 {
		t.Fatalf("downloaded export: %+v, %v", rep, err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	base := []string{"-dev", "-data-dir", dir}
	out, err := runTool(t, nil, append([]string{"audit", "verify"}, base...)...)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	export := filepath.Join(t.TempDir(), "export.json")
	if _, err := runTool(t, nil, append([]string{"audit", "export", "-format", "json", "-out", export}, base...)...); err != nil {
		t.Fatalf("export: %v", err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "audit-signing.key"))
	pub := strings.Fields(string(key))[1]
	out, err = runTool(t, nil, "audit", "verify", "-file", export, "-pubkey", pub)
	if err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("offline verify: %v\n%s", err, out)
	}
	csvOut, err := runTool(t, nil, append([]string{"audit", "export", "-format", "csv"}, base...)...)
	if err != nil || !strings.Contains(csvOut, "totp.enrolled") || !strings.Contains(csvOut, "audit.exported") {
		t.Fatalf("csv export: %v\n%s", err, csvOut)
	}

	// An edited row is found and named.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit_entries SET canonical = replace(canonical, 'success', 'failure') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	out, err = runTool(t, nil, append([]string{"audit", "verify"}, base...)...)
	if err == nil || !strings.Contains(out, "entry 2 was altered") {
		t.Fatalf("tampered verify: %v\n%s", err, out)
	}
}

func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	base := []string{"-dev", "-data-dir", dir}
	out, err := runTool(t, nil, append([]string{"keys", "rotate-data"}, base...)...)
	if err != nil || !strings.Contains(out, "data key 2") {
		t.Fatalf("rotate-data: %v\n%s", err, out)
	}
	newKey := filepath.Join(t.TempDir(), "master.key")
	env := map[string]string{"SIGNAL_NEW_KEY_PASSPHRASE": "a long new passphrase"}
	out, err = runTool(t, env, append([]string{"keys", "rotate-master", "-new-key-file", newKey}, base...)...)
	if err != nil || !strings.Contains(out, "2 data keys re-wrapped") {
		t.Fatalf("rotate-master: %v\n%s", err, out)
	}
	// The development key no longer opens the data keys; the new file does.
	if _, err := runTool(t, nil, append([]string{"keys", "status"}, base...)...); err != nil {
		t.Fatalf("status with the old key: %v", err)
	}
	statusEnv := map[string]string{"SIGNAL_KEY_PASSPHRASE": "a long new passphrase"}
	out, err = runTool(t, statusEnv, "keys", "status", "-data-dir", dir, "-key-file", newKey)
	if err != nil || strings.Count(out, "data key") != 2 || !strings.Contains(out, "active") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if strings.Contains(out, "wrapped ") && strings.Contains(out, "=") {
		t.Fatalf("status shows key material:\n%s", out)
	}
	init := filepath.Join(t.TempDir(), "fresh.key")
	out, err = runTool(t, statusEnv, "keys", "init", "-key-file", init)
	if err != nil || !strings.Contains(out, "written") {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if _, err := runTool(t, statusEnv, "keys", "init", "-key-file", init); err == nil {
		t.Fatal("init replaced an existing key file")
	}
}
