// Package obs owns what an operator observes of a running process: the
// structured logger, the Prometheus registry with HTTP request metrics, and the
// /healthz, /readyz and /metrics endpoints.
//
// Nothing here ever labels a metric or a log line with a user, a consult, a
// URL path or a name: routes are reported by their pattern ("GET /j/{token}"),
// never by the path that matched it, because paths carry secrets and PHI.
package obs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogLevels are the values -log-level accepts.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogFormats are the values -log-format accepts.
var LogFormats = []string{"json", "text"}

// NewLogger returns a logger writing to w at level in format ("json" for
// machines, "text" for a terminal).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q is not one of %s", format, strings.Join(LogFormats, ", "))
	}
}
