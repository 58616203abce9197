package obs

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// AdminHandler serves the monitoring endpoints on an operator-only listener:
// /metrics, /healthz and /readyz. Its own requests are counted under
// server="admin".
func AdminHandler(reg *prometheus.Registry, health *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(reg))
	mux.HandleFunc("GET /healthz", health.Live)
	mux.HandleFunc("GET /readyz", health.Ready)
	return NewHTTPMetrics(reg, "admin").Wrap(mux)
}
