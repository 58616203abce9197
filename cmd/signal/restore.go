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

	"github.com/openconsult/openconsult/audit"
	"github.com/openconsult/openconsult/internal/backup"
	"github.com/openconsult/openconsult/keyring"
)

// restoreCommand is `signal restore -from FILE`: it decrypts a backup into
// an empty data directory. Nothing is put in place until the whole backup
// has authenticated, so a damaged or truncated backup leaves the directory
// as it was.
func restoreCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, fs := toolFlags("signal restore", stderr)
	from := fs.String("from", "", "encrypted backup `file` written by signal backup")
	s.tool = true
	if err := s.load(args, getenv); err != nil {
		return err
	}
	if *from == "" || fs.NArg() > 0 {
		return errors.New("usage: signal restore -from FILE -data-dir EMPTY-DIR (with the master key of the backup)")
	}
	dbPath, ok := strings.CutPrefix(s.database, "sqlite:")
	if !ok {
		return errors.New("signal restore writes a SQLite database; restore PostgreSQL with pg_restore (docs/operations.md)")
	}
	if s.masterKey == "" && s.keyFile == "" {
		return errors.New("give the master key of the backup: -key-file with its passphrase, or SIGNAL_MASTER_KEY")
	}
	master, err := masterKey(s, discardLogger())
	if err != nil {
		return err
	}
	for _, dir := range []string{s.dataDir, s.auditCheckpointDir} {
		if err := refuseNonEmpty(dir); err != nil {
			return err
		}
	}
	if _, err := os.Stat(dbPath); err == nil {
		return fmt.Errorf("%s exists; restore only into an empty data directory", dbPath)
	}
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(s.dataDir, ".restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	got, err := extractBackup(ctx, *from, master, stage)
	if err != nil {
		return fmt.Errorf("restore %s: %w (nothing was restored)", *from, err)
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(stage, backupDBEntry), dbPath); err != nil {
		return err
	}
	if got[backupCheckpointEntry] {
		if err := os.MkdirAll(s.auditCheckpointDir, 0o700); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(stage, backupCheckpointEntry), filepath.Join(s.auditCheckpointDir, audit.CheckpointFileName)); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "restored %s into %s.\nPut the audit signing key in place (-audit-key-file), then check with `signal audit verify` and `signal keys status`.\n", *from, dbPath)
	return nil
}

// refuseNonEmpty accepts a directory that is missing or empty.
func refuseNonEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty; restore only into an empty data directory", dir)
	}
	return nil
}

// extractBackup decrypts the backup into stage and reports which entries
// it held. It returns only once the last chunk authenticated.
func extractBackup(ctx context.Context, from string, master keyring.MasterKey, stage string) (map[string]bool, error) {
	f, err := os.Open(from)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := backup.NewReader(f, master)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(stage, "audit-checkpoints"), 0o700); err != nil {
		return nil, err
	}
	got := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if (h.Name != backupDBEntry && h.Name != backupCheckpointEntry) || got[h.Name] || h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("backup holds an unexpected entry %q", h.Name)
		}
		got[h.Name] = true
		if err := writeEntry(filepath.Join(stage, h.Name), tr); err != nil {
			return nil, err
		}
	}
	// The archive's end is not the backup's: the last chunk must authenticate.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	if !got[backupDBEntry] {
		return nil, errors.New("backup holds no database")
	}
	return got, nil
}

func writeEntry(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
