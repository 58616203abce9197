// Command sfu is a media node: it receives and forwards the RTP of consults
// with three or more participants, and of recorded consults. The signal
// server reaches it over an authenticated internal link.
//
// This release runs the node's lifecycle and monitoring endpoints (/metrics,
// /healthz, /readyz); media listeners are added with the forwarding engine.
package main

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/openconsult/openconsult/internal/cli"
	"github.com/openconsult/openconsult/internal/config"
	"github.com/openconsult/openconsult/internal/obs"
	"github.com/openconsult/openconsult/internal/serve"
)

func main() { cli.Main("sfu", run) }

type settings struct {
	set             *config.Set
	adminListen     config.Addr
	shutdownTimeout time.Duration
	logLevel        config.Enum
	logFormat       config.Enum
}

func newSettings(stderr io.Writer) *settings {
	s := &settings{
		adminListen: config.Addr{Value: "127.0.0.1:9091"},
		logLevel:    config.Enum{Value: "info", Allowed: obs.LogLevels},
		logFormat:   config.Enum{Value: "json", Allowed: obs.LogFormats},
	}
	s.set = config.New("sfu", "SFU", stderr)
	fs := s.set.Flags()
	fs.Var(&s.adminListen, "admin-listen", "plain HTTP `address` of /metrics, /healthz and /readyz; keep it on a private interface")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 15*time.Second, "time in-flight work gets to finish on shutdown")
	fs.Var(&s.logLevel, "log-level", "log `level`: debug, info, warn or error")
	fs.Var(&s.logFormat, "log-format", "log `format`: json or text")
	return s
}

func (s *settings) load(args []string, getenv func(string) string) error {
	if err := s.set.Load(args, getenv); err != nil {
		return err
	}
	var errs []error
	if s.adminListen.Value == "" {
		errs = append(errs, s.set.Invalid("admin-listen", "the node must be observable: give an address"))
	}
	if s.shutdownTimeout <= 0 || s.shutdownTimeout > 10*time.Minute {
		errs = append(errs, s.set.Invalid("shutdown-timeout", "%s is outside (0, 10m]", s.shutdownTimeout))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	s := newSettings(stderr)
	if err := s.load(args, getenv); err != nil {
		return err
	}
	log, err := obs.NewLogger(stderr, s.logLevel.Value, s.logFormat.Value)
	if err != nil {
		return err
	}
	ln, err := serve.Listen("admin", s.adminListen.Value)
	if err != nil {
		return err
	}
	reg := obs.NewRegistry()
	health := obs.NewHealth(log, 2*time.Second)
	log.Info("sfu node started")
	err = serve.Run(ctx, log, s.shutdownTimeout, serve.Server{Name: "admin", Listener: ln, Handler: obs.AdminHandler(reg, health)})
	log.Info("stopped")
	return err
}
