package obs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check reports whether one dependency is usable.
type Check func(ctx context.Context) error

// ErrDraining is what a Check returns while its part of the process is
// shutting down gracefully: /readyz then names the check "draining" rather
// than "failing", so that an operator watching a rolling update tells a
// planned stop from a fault.
var ErrDraining = errors.New("draining")

// Health answers /healthz (the process is alive and serving) and /readyz (its
// dependencies answer, so a load balancer may send it traffic).
type Health struct {
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	checks []namedCheck
}

type namedCheck struct {
	name  string
	check Check
}

// NewHealth returns a Health whose readiness checks each get timeout.
func NewHealth(log *slog.Logger, timeout time.Duration) *Health {
	return &Health{log: log, timeout: timeout}
}

// AddCheck adds a readiness check; name is shown to callers of /readyz.
func (h *Health) AddCheck(name string, check Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, namedCheck{name, check})
}

// Live serves /healthz.
func (h *Health) Live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready serves /readyz: 200 when every check passes, 503 naming the checks
// that failed or are draining. Error details go to the log only; they can describe internals
// a caller has no business seeing.
func (h *Health) Ready(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	checks := append([]namedCheck(nil), h.checks...)
	h.mu.Unlock()

	status := map[string]string{}
	code := http.StatusOK
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		err := c.check(ctx)
		cancel()
		if errors.Is(err, ErrDraining) {
			status[c.name] = "draining"
			code = http.StatusServiceUnavailable
			continue
		}
		if err != nil {
			h.log.Warn("readiness check failed", "check", c.name, "err", err)
			status[c.name] = "failing"
			code = http.StatusServiceUnavailable
			continue
		}
		status[c.name] = "ok"
	}
	writeJSON(w, code, map[string]any{"ready": code == http.StatusOK, "checks": status})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
