// Package serve owns the lifetime of a process's HTTP servers: listeners are
// opened before anything is announced (so a taken port fails the start), all
// servers stop together when one fails, and a cancelled context shuts them
// down gracefully within a grace period.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is one HTTP server on an already-open listener; TLS nil means plain
// HTTP. Handshaken means the Listener's connections are past their TLS
// handshake already (a port shared with TURN, internal/tlsmux): the server
// serves them as they are, HTTP/2 for those that negotiated h2.
type Server struct {
	Name       string
	Listener   net.Listener
	Handler    http.Handler
	TLS        *tls.Config
	Handshaken bool
}

// Listen opens a TCP listener, naming the setting's purpose in the error.
func Listen(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %s: %w", name, addr, err)
	}
	return ln, nil
}

// Run serves every server until ctx is cancelled or one of them fails, then
// shuts all of them down, giving in-flight requests up to grace to finish.
// It returns the first serving error, or nil after a requested shutdown.
func Run(ctx context.Context, log *slog.Logger, grace time.Duration, servers ...Server) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	https := make([]*http.Server, len(servers))
	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		srv := &http.Server{
			Handler:           s.Handler,
			TLSConfig:         s.TLS,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			// Handshake failures from scanners are routine; keep them out
			// of the default log level.
			ErrorLog: errLog,
			BaseContext: func(net.Listener) context.Context {
				return ctx
			},
		}
		https[i] = srv
		wg.Go(func() {
			var err error
			if s.TLS != nil && !s.Handshaken {
				err = srv.ServeTLS(s.Listener, "", "")
			} else {
				err = srv.Serve(s.Listener)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s server: %w", s.Name, err)
				cancel()
			}
		})
		log.Info("listening", "server", s.Name, "addr", s.Listener.Addr().String(), "tls", s.TLS != nil)
	}

	<-ctx.Done()
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer done()
	for i, srv := range https {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("forced shutdown", "server", servers[i].Name, "err", err)
			srv.Close()
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}
