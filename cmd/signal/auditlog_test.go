package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/store"
)

// auditSite is a data directory whose server has recorded some audit
// entries and stopped.
type auditSite struct {
	dir  string
	vkey string
}

func newAuditSite(t *testing.T) *auditSite {
	t.Helper()
	a := &auditSite{dir: t.TempDir()}
	d := startDev(t, a.dir)
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(a.dir, "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	a.vkey = strings.Fields(string(key))[1]
	return a
}

func (a *auditSite) checkpointFile() string {
	return filepath.Join(a.dir, "audit-checkpoints", audit.CheckpointFileName)
}

// records lists the sizes of the checkpoint file's records.
func (a *auditSite) records(t *testing.T) []uint64 {
	t.Helper()
	recs, err := audit.ReadCheckpoints(a.checkpointFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range recs {
		cp, err := audit.OpenCheckpoint(r.Note, a.vkey)
		if err != nil {
			t.Fatalf("%s: %v", r.Source, err)
		}
		out = append(out, cp.Size)
	}
	return out
}

func (a *auditSite) db(t *testing.T) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(a.dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func (a *auditSite) count(t *testing.T, table string) uint64 {
	t.Helper()
	var n uint64
	if err := a.db(t).QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// rewrite gives entries from seq on another requester with a consistent
// chain, as a database writer who knows the format would.
func (a *auditSite) rewrite(t *testing.T, seq uint64) {
	t.Helper()
	raw := a.db(t)
	var prev []byte
	if err := raw.QueryRow(`SELECT leaf_hash FROM audit_entries WHERE seq = ?`, seq-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	rows, err := raw.Query(`SELECT canonical FROM audit_entries WHERE seq >= ? ORDER BY seq`, seq)
	if err != nil {
		t.Fatal(err)
	}
	var entries []audit.Entry
	for rows.Next() {
		var c []byte
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		e, err := audit.ParseEntry(c)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	rows.Close()
	for _, e := range entries {
		e.Requester, e.Prev = "u_mallory", hex.EncodeToString(prev)
		c, err := e.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		prev = audit.LeafHash(c)
		if _, err := raw.Exec(`UPDATE audit_entries SET canonical = ?, leaf_hash = ? WHERE seq = ?`, c, prev, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopAndStartLeaveACheckpointOfTheWholeLogOutsideTheDatabase(t *testing.T) {
	a := newAuditSite(t)
	n := a.count(t, "audit_entries")
	got := a.records(t)
	if len(got) == 0 || got[len(got)-1] != n {
		t.Fatalf("checkpoint file after a graceful stop: %v, log of %d entries", got, n)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(a.checkpointFile()): 0o700, a.checkpointFile(): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want %04o", path, fi.Mode().Perm(), err, want)
		}
	}
	// A process that appended and died before its checkpoint.
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(a.dir, "signal.db"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadSigner(filepath.Join(a.dir, "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.New(db, signer, time.Now).Append(ctx, audit.Entry{Type: audit.TypeSignIn, Outcome: audit.Failure, Requester: "u_x"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	d := startDev(t, a.dir)
	after := a.records(t)
	if len(after) != len(got)+1 || after[len(after)-1] != n+1 {
		t.Fatalf("checkpoint file after a start over a grown log: %v, log of %d entries", after, n+1)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if again := a.records(t); len(again) != len(after) {
		t.Fatalf("a stop with nothing new signed again: %v", again)
	}
}

func TestTamperingHiddenFromTheDatabaseIsFoundByVerifyAndAtStart(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, a *auditSite, n uint64)
		verify func(n uint64, file string) string
		alarm  string
	}{
		{"newest entries deleted", func(t *testing.T, a *auditSite, n uint64) {
			if _, err := a.db(t).Exec(`DELETE FROM audit_entries WHERE seq > ?`, n-2); err != nil {
				t.Fatal(err)
			}
		}, func(n uint64, file string) string {
			return fmt.Sprintf("the checkpoint in %s record", file)
		}, "were removed"},
		{"chain rewritten at the same length", func(t *testing.T, a *auditSite, n uint64) {
			a.rewrite(t, 2)
		}, func(n uint64, file string) string {
			return fmt.Sprintf("do not match the checkpoint of %d entries in %s", n, file)
		}, "the log was rewritten"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuditSite(t)
			base := []string{"-dev", "-data-dir", a.dir}
			n := a.count(t, "audit_entries")
			tt.tamper(t, a, n)
			if _, err := a.db(t).Exec(`DELETE FROM audit_checkpoints`); err != nil {
				t.Fatal(err)
			}
			records := a.records(t)
			out, err := runTool(t, nil, append([]string{"audit", "verify"}, base...)...)
			if err == nil || !strings.Contains(out, tt.verify(n, a.checkpointFile())) {
				t.Fatalf("verify: %v\n%s", err, out)
			}

			d := startDev(t, a.dir)
			var alarmed bool
			for _, line := range logLines(t, d.stderr.String()) {
				msg, _ := line["msg"].(string)
				errText, _ := line["err"].(string)
				alarmed = alarmed || line["level"] == "ERROR" && strings.Contains(msg, "ALARM") && strings.Contains(errText, tt.alarm)
			}
			if !alarmed {
				t.Fatalf("no alarm logged at error:\n%s", d.stderr)
			}
			resp, body := d.do(t, "GET", d.admin+"/readyz", nil, "")
			var ready struct{ Checks map[string]string }
			if err := json.Unmarshal([]byte(body), &ready); err != nil || resp.StatusCode != 503 || ready.Checks[auditCheckName] != "failing" {
				t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
			}
			if _, body := d.do(t, "GET", d.admin+"/metrics", nil, ""); !strings.Contains(body, "\naudit_log_contradicts_checkpoint 1\n") {
				t.Fatalf("/metrics has no alarm:\n%s", body)
			}
			// The log grows on: a failed sign-in is recorded.
			postForm(t, d.staffClient(t), d.public+"/signin", url.Values{"username": {"chief.admin"}, "password": {"not the passphrase"}})
			if err := d.stop(); err != nil {
				t.Fatal(err)
			}
			if got := a.records(t); fmt.Sprint(got) != fmt.Sprint(records) || a.count(t, "audit_checkpoints") != 0 {
				t.Fatalf("checkpoints signed over the contradicted log: file %v (was %v), %d in the database",
					got, records, a.count(t, "audit_checkpoints"))
			}
			if _, err := runTool(t, nil, append([]string{"audit", "export", "-out", filepath.Join(t.TempDir(), "x.json")}, base...)...); err == nil {
				t.Fatal("export signed over the contradicted log")
			}
		})
	}
}

func TestExportOfACutLogIsFoundWithTheCheckpointFile(t *testing.T) {
	a := newAuditSite(t)
	base := []string{"-dev", "-data-dir", a.dir}
	n := a.count(t, "audit_entries")
	if _, err := a.db(t).Exec(`DELETE FROM audit_entries WHERE seq > ?`, n-2); err != nil {
		t.Fatal(err)
	}
	// Exported by a process that does not see the checkpoint file, the
	// export is valid for the log it saw.
	export := filepath.Join(t.TempDir(), "export.json")
	blind := append([]string{"audit", "export", "-audit-checkpoint-dir", filepath.Join(t.TempDir(), "elsewhere"), "-out", export}, base...)
	if out, err := runTool(t, nil, blind...); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := runTool(t, nil, "audit", "verify", "-file", export, "-pubkey", a.vkey); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("export alone: %v\n%s", err, out)
	}
	out, err := runTool(t, nil, "audit", "verify", "-file", export, "-pubkey", a.vkey, "-checkpoint", a.checkpointFile())
	if err == nil || !strings.Contains(out, "the log's tail was cut before the export") || !strings.Contains(out, fmt.Sprintf("entries %d to %d are missing", n, n)) {
		t.Fatalf("export with the checkpoint file: %v\n%s", err, out)
	}
}

func TestAuditCheckpointSettingsAreChecked(t *testing.T) {
	loose := filepath.Join(t.TempDir(), "cp")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown syslog target", []string{"-audit-syslog", "logs.example.org:514"}, []string{"-audit-syslog", "udp:"}},
		{"witness over plain http", []string{"-audit-witness-url", "http://witness.example.org/add"}, []string{"-audit-witness-url", "https://"}},
		{"witness not a URL", []string{"-audit-witness-url", "witness"}, []string{"-audit-witness-url", "absolute"}},
		{"checkpoint directory open to others", []string{"-audit-checkpoint-dir", loose}, []string{loose, "chmod 700"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"-dev", "-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-http-listen", "off", "-admin-listen", "off",
				"-relay-listen", "off", "-relay-tls-listen", "off", "-sfu-embedded=false"}, tt.args...)
			err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("bad setting accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCheckpointsReachSyslogAndTheWitness(t *testing.T) {
	var mu sync.Mutex
	var notes [][]byte
	wit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		notes = append(notes, b)
		mu.Unlock()
	}))
	defer wit.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	lines := make(chan string, 16)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(lines)
				return
			}
			lines <- string(buf[:n])
		}
	}()

	dir := t.TempDir()
	d := startDev(t, dir, "-audit-witness-url", wit.URL+"/checkpoint", "-audit-syslog", "udp:"+pc.LocalAddr().String())
	createFirstAdmin(t, d, "chief.admin", "a long admin passphrase")
	signInHTTP(t, d, "chief.admin", "a long admin passphrase")
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	a := &auditSite{dir: dir}
	key, _ := os.ReadFile(filepath.Join(dir, "audit-signing.key"))
	a.vkey = strings.Fields(string(key))[1]
	n := a.count(t, "audit_entries")
	// The checkpoint of the graceful stop went to both.
	mu.Lock()
	got := append([][]byte(nil), notes...)
	mu.Unlock()
	if len(got) == 0 {
		t.Fatalf("the witness got no checkpoint (log of %d entries, file %v):\n%s", n, a.records(t), d.stderr)
	}
	last := got[len(got)-1]
	if cp, err := audit.OpenCheckpoint(last, a.vkey); err != nil || cp.Size != n {
		t.Fatalf("witness's last note: %+v %v, log of %d", cp, err, n)
	}
	var line string
	for !strings.Contains(line, fmt.Sprintf("audit checkpoint %d ", n)) {
		select {
		case line = <-lines:
		case <-time.After(10 * time.Second):
			t.Fatalf("no syslog line for the checkpoint of %d entries", n)
		}
	}
	syslogCopy := filepath.Join(t.TempDir(), "syslog")
	if err := os.WriteFile(syslogCopy, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	// An operator hands verify what syslog kept.
	out, err := runTool(t, nil, "audit", "verify", "-dev", "-data-dir", dir, "-checkpoint", syslogCopy)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Fatalf("verify with the syslog copy: %v\n%s", err, out)
	}
}
