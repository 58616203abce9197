package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/openconsult/openconsult/store"
)

// dbCommand is `signal db copy`: it moves an installation to another
// database, typically from SQLite to PostgreSQL.
func dbCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: signal db copy -from sqlite:PATH -to postgres://USER@HOST/DB (stop signal first)")
	if len(args) == 0 || args[0] != "copy" {
		return usage
	}
	fs := flag.NewFlagSet("signal db copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "database to copy from: sqlite:PATH or postgres://...")
	to := fs.String("to", "", "empty database to copy into (default: SIGNAL_DATABASE); a password is better given in PGPASSWORD or ~/.pgpass")
	timeout := fs.Duration("timeout", 2*time.Hour, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *to == "" {
		*to = getenv("SIGNAL_DATABASE")
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		return usage
	}
	if *from == *to {
		return errors.New("-from and -to name the same database")
	}
	// Opening a SQLite path creates the file: a mistyped source would copy
	// an empty installation over.
	if path, ok := strings.CutPrefix(*from, "sqlite:"); ok || !strings.Contains(*from, "://") {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	src, err := openStore(ctx, &settings{database: *from})
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := openStore(ctx, &settings{database: *to})
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	var rows int64
	tables, err := store.Copy(ctx, src, dst, func(c store.TableCopy) {
		fmt.Fprintf(stdout, "%-20s %d rows\n", c.Table, c.Rows)
		rows += c.Rows
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %d rows in %d tables; row counts and contents match the source.\n"+
		"Check the audit log on the target with `signal audit verify -database ...`, then point -database at it.\n", rows, len(tables))
	return nil
}
