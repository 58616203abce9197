package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/backup"
	"github.com/openconsult/openconsult/keyring"
)

// The entries of a backup's archive: nothing else is restored.
const (
	backupDBEntry         = "signal.db"
	backupCheckpointEntry = "audit-checkpoints/" + audit.CheckpointFileName
)

// backupCommand is `signal backup -to FILE`: an online, consistent copy of
// the SQLite database and the external audit checkpoints, encrypted under a
// key derived from the master key. The master key and the audit signing key
// are not in it: they are kept apart.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, fs := toolFlags("signal backup", stderr)
	to := fs.String("to", "", "write the encrypted backup to this new `file`")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long")
	s.tool = true
	if err := s.load(args, getenv); err != nil {
		return err
	}
	if *to == "" || fs.NArg() > 0 {
		return errors.New("usage: signal backup -to FILE [-config signal.toml] (SQLite; for PostgreSQL see docs/operations.md)")
	}
	if !strings.HasPrefix(s.database, "sqlite:") {
		return errors.New("signal backup copies a SQLite database; back PostgreSQL up with pg_dump or PITR (docs/operations.md)")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	master, err := toolMasterKey(s)
	if err != nil {
		return err
	}
	if _, err := os.Stat(strings.TrimPrefix(s.database, "sqlite:")); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	db, err := openStore(ctx, s)
	if err != nil {
		return err
	}
	defer db.Close()
	// A backup under a master key that does not open the data keys could
	// never be read with what it needs.
	if _, err := keyring.Open(ctx, db, master); err != nil {
		return fmt.Errorf("the master key given does not open this database's data keys: %w", err)
	}
	// Checkpoints first: the database copied after them is at least as new
	// as every checkpoint, so the restored log verifies against them.
	checkpoints, err := readCheckpoints(s.auditCheckpointDir)
	if err != nil {
		return err
	}
	// The plain copy stays beside the database (mode 0700 directory), never
	// on the backup storage.
	tmp, err := os.MkdirTemp(filepath.Dir(strings.TrimPrefix(s.database, "sqlite:")), ".signal-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, backupDBEntry)
	if err := db.SnapshotSQLite(ctx, snap); err != nil {
		return err
	}
	if err := writeBackup(*to, master, snap, checkpoints); err != nil {
		return err
	}
	fi, err := os.Stat(*to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, encrypted for master key %s).\n"+
		"Restoring it needs that master key and the audit signing key, which the backup does not contain: keep them apart.\n",
		*to, fi.Size(), master.Fingerprint())
	return nil
}

// toolMasterKey is the master key of a subcommand that must not create one.
func toolMasterKey(s *settings) (keyring.MasterKey, error) {
	if s.masterKey == "" && s.keyFile == "" {
		if !s.dev {
			return keyring.MasterKey{}, errors.New("give the master key: -key-file with its passphrase, or SIGNAL_MASTER_KEY (-dev uses the development key)")
		}
		if _, err := os.Stat(filepath.Join(s.dataDir, "dev-master.key")); err != nil {
			return keyring.MasterKey{}, fmt.Errorf("development master key: %w", err)
		}
	}
	return masterKey(s, discardLogger())
}

// readCheckpoints returns the complete records of the checkpoint file, or
// nil when there is none; a record being appended is left out.
func readCheckpoints(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, audit.CheckpointFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		return b[:i+1], nil
	}
	return []byte{}, nil
}

func writeBackup(to string, master keyring.MasterKey, snap string, checkpoints []byte) (err error) {
	f, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(to)
		}
	}()
	w, err := backup.NewWriter(f, master)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	db, err := os.Open(snap)
	if err != nil {
		return err
	}
	defer db.Close()
	fi, err := db.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: backupDBEntry, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, db); err != nil {
		return fmt.Errorf("backup database: %w", err)
	}
	if checkpoints != nil {
		if err := tw.WriteHeader(&tar.Header{Name: backupCheckpointEntry, Mode: 0o600, Size: int64(len(checkpoints)), ModTime: time.Now()}); err != nil {
			return err
		}
		if _, err := tw.Write(checkpoints); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Sync()
}
