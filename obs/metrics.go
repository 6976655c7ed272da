package obs

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric corebank defines: corebank_rpc_requests_total,
// corebank_ledger_writes_total. Use it as prometheus.Opts.Namespace.
// Metrics from the Go runtime and process collectors keep their standard
// go_ and process_ names.
const Namespace = "corebank"

// NewRegistry returns an empty Prometheus registry holding only the Go
// runtime and process collectors. corebank never uses the client library's
// global default registry: each process (and each test) builds its own and
// passes it to whatever registers metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// MetricsHandler serves the metrics gathered from g (usually the registry
// from NewRegistry) in the Prometheus exposition format, for a scrape of
// GET /metrics. A collector that fails is reported in the response and the
// rest are still served.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Register registers c in reg and returns it, or returns the collector of
// the same description already registered there (services opened twice on
// one registry, as tests do, share their metrics). Other registration
// errors (a name reused with other labels) are returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
