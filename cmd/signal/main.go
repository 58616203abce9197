// Command signal is the platform's web server: the HTTPS site, JSON API and
// WebSocket signaling that clinicians and patients use. With -dev it runs the
// whole platform on one machine for evaluation and development.
package main

import (
	"context"
	"io"

	"github.com/openconsult/openconsult/internal/cli"
)

func main() { cli.Main("signal", run) }

// run is the whole program; main only binds it to the process so tests can
// start the server on random ports and read what an operator would see.
// Operator-facing instructions (the URL to open, the setup link) go to
// stdout; structured logs go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdout, stderr, nil)
}

// runWith is run with a hook that tests use to adjust the settings once
// they are loaded.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, adjust func(*settings)) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	s := newSettings(stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	if adjust != nil {
		adjust(s)
	}
	if s.check {
		return checkConfig(s, stdout)
	}
	srv, err := start(ctx, s, stdout, stderr)
	if err != nil {
		return err
	}
	return srv.serve(ctx)
}
