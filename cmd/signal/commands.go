package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/keyring"
	"github.com/openconsult/openconsult/store"
)

// commands are the operator's subcommands: `signal audit ...`, `signal keys ...`,
// `signal db ...`, `signal backup`, `signal restore`.
var commands = map[string]func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error{
	"audit":   auditCommand,
	"backup":  backupCommand,
	"db":      dbCommand,
	"keys":    keysCommand,
	"restore": restoreCommand,
}

// toolFlags are the settings every subcommand shares with the server, so
// `signal audit verify -config /etc/openconsult/signal.toml` finds the same
// database and keys.
func toolFlags(name string, stderr io.Writer) (*settings, *flag.FlagSet) {
	s := newSettings(stderr)
	s.set.Flags().Init(name, flag.ContinueOnError)
	return s, s.set.Flags()
}

func openStore(ctx context.Context, s *settings) (*store.DB, error) {
	db, err := store.Open(ctx, s.database)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "export" && args[0] != "keygen") {
		return errors.New("usage: signal audit verify [-checkpoint FILE] [-file export.json -pubkey KEY] | signal audit export [-since T] [-until T] [-user ID] [-format json|csv] [-out FILE] | signal audit keygen -audit-key-file FILE")
	}
	s, fs := toolFlags("signal audit "+args[0], stderr)
	file := fs.String("file", "", "verify this export offline instead of the database")
	pubkey := fs.String("pubkey", "", "auditor's public key (default: the key of -audit-key-file)")
	since := fs.String("since", "", "export entries from this time (RFC 3339 or YYYY-MM-DD)")
	until := fs.String("until", "", "export entries before this time (RFC 3339 or YYYY-MM-DD)")
	user := fs.String("user", "", "export entries by or about this user id")
	format := fs.String("format", "json", "export format: json (verifiable) or csv")
	out := fs.String("out", "", "write the export to this file (default: standard output)")
	var checkpoints config.StringList
	fs.Var(&checkpoints, "checkpoint", "also verify against the signed checkpoints in this `file` (a copy of the checkpoint file, syslog lines, a witness's note); repeatable; with -file, the checkpoint file of the time of the export")
	s.tool = true
	if err := s.load(args[1:], getenv); err != nil {
		return err
	}
	if args[0] == "keygen" {
		return auditKeygen(s, stdout)
	}
	if args[0] == "verify" && *file != "" {
		if *pubkey == "" {
			return errors.New("offline verification needs -pubkey")
		}
		return verifyExportFile(*file, *pubkey, checkpoints.Values, stdout)
	}
	db, err := openStore(ctx, s)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := os.Stat(s.auditKeyFile); err != nil {
		return fmt.Errorf("audit signing key: %w (run the server once, or give -audit-key-file)", err)
	}
	signer, err := audit.LoadOrCreateSigner(s.auditKeyFile, "")
	if err != nil {
		return err
	}
	key := *pubkey
	if key == "" {
		key = signer.VerifierKey()
	}
	if args[0] == "verify" {
		return verifyLog(ctx, db, key, s.auditCheckpointDir, checkpoints.Values, stdout)
	}
	f := audit.Filter{User: *user}
	if f.Since, err = parseWhen(*since); err != nil {
		return fmt.Errorf("-since: %w", err)
	}
	if f.Until, err = parseWhen(*until); err != nil {
		return fmt.Errorf("-until: %w", err)
	}
	lg, closeLog, err := openToolAuditLog(ctx, s, db, signer, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	w := stdout
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	return lg.Export(ctx, w, f, *format, "operator:"+osUser())
}

func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02", s)
}

func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: signal keys init -key-file PATH | rotate -new-key-file PATH | rotate-data | status")
	if len(args) == 0 {
		return usage
	}
	if args[0] == "rotate" {
		args[0] = "rotate-master" // rotating "the keys" means the master key
	}
	s, fs := toolFlags("signal keys "+args[0], stderr)
	newKeyFile := fs.String("new-key-file", "", "rotate-master: write the new master key to this passphrase-protected file")
	newPassFile := fs.String("new-passphrase-file", "", "passphrase of the new key file (or SIGNAL_NEW_KEY_PASSPHRASE)")
	switch args[0] {
	case "init":
		if err := s.set.Flags().Parse(args[1:]); err != nil {
			return err
		}
		if s.keyFile == "" {
			return errors.New("keys init needs -key-file PATH")
		}
		if _, err := os.Stat(s.keyFile); err == nil {
			return fmt.Errorf("%s exists; refusing to replace a master key", s.keyFile)
		}
		pass, err := passphrase(s.keyPassphraseFile, getenv("SIGNAL_KEY_PASSPHRASE"))
		if err != nil {
			return err
		}
		m, err := keyring.NewMasterKey()
		if err != nil {
			return err
		}
		if err := keyring.WriteKeyFile(s.keyFile, pass, m, keyring.DefaultKDFParams); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master key %s written to %s\nKeep a copy of the file and its passphrase apart from the database backups.\n", m.Fingerprint(), s.keyFile)
		return nil
	case "rotate-master", "rotate-data", "status":
	default:
		return usage
	}
	s.tool = true
	if err := s.load(args[1:], getenv); err != nil {
		return err
	}
	if !s.dev && s.masterKey == "" && s.keyFile == "" {
		return errors.New("give the master key: -key-file with its passphrase, or SIGNAL_MASTER_KEY (-dev uses the development key)")
	}
	db, err := openStore(ctx, s)
	if err != nil {
		return err
	}
	defer db.Close()
	master, err := masterKey(s, discardLogger())
	if err != nil {
		return err
	}
	switch args[0] {
	case "status":
		keys, err := keyring.Describe(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master key given: %s\n", master.Fingerprint())
		for _, k := range keys {
			state := "retired (read only)"
			if k.Active {
				state = "active"
			}
			fmt.Fprintf(stdout, "data key %d: wrapped by %s, created %s, %s\n", k.ID, k.Master, k.CreatedAt.Format(time.RFC3339), state)
		}
		return nil
	case "rotate-data":
		k, err := keyring.Open(ctx, db, master)
		if err != nil {
			return err
		}
		id, err := k.RotateDataKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "data key %d is now used for new values; older values stay readable\n", id)
		return nil
	default: // rotate-master
		if *newKeyFile == "" {
			return errors.New("rotate-master needs -new-key-file PATH")
		}
		pass, err := passphrase(*newPassFile, getenv("SIGNAL_NEW_KEY_PASSPHRASE"))
		if err != nil {
			return err
		}
		// The library removes the new file only when it can prove the data
		// keys are still under the old key, never after a commit.
		next, n, err := keyring.RotateMasterToKeyFile(ctx, db, master, *newKeyFile, pass)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d data keys re-wrapped under master key %s (file %s).\nRunning servers keep working; point -key-file at the new file before their next start, then destroy the old file.\n",
			n, next.Fingerprint(), filepath.Clean(*newKeyFile))
		return nil
	}
}

func passphrase(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if env == "" {
		return "", errors.New("give the passphrase in a file (-key-passphrase-file / -new-passphrase-file) or the environment")
	}
	return env, nil
}
