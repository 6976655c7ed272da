package ledger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/obs"

	"github.com/corebank/corebank/errors"
)

type metrics struct {
	writes  *prometheus.CounterVec
	batch   prometheus.Histogram
	commit  prometheus.Histogram
	failed  prometheus.Counter
	enabled bool
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corebank_ledger_writes_total",
			Help: "Ledger writes by kind and result code (ok on success).",
		}, []string{"kind", "code"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "corebank_ledger_batch_writes",
			Help:    "Writes per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "corebank_ledger_commit_seconds",
			Help:    "Time to decide and durably commit one group of writes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corebank_ledger_commit_failures_total",
			Help: "Group commits that failed and were answered Unavailable (nothing stored) or Timeout (the COMMIT's answer lost).",
		}),
	}
	if reg != nil {
		m.enabled = true
		m.writes = register(reg, m.writes)
		m.batch = register(reg, m.batch)
		m.commit = register(reg, m.commit)
		m.failed = register(reg, m.failed)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (several ledgers in one process share one registry in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, _ = obs.Register(reg, c)
	return c
}

func (m *metrics) observe(ops []*op, d time.Duration, err error) {
	if !m.enabled {
		return
	}
	m.batch.Observe(float64(len(ops)))
	m.commit.Observe(d.Seconds())
	if err != nil {
		m.failed.Inc()
	}
	for _, o := range ops {
		code := "ok"
		if o.err != nil {
			code = string(errors.CodeOf(o.err))
		}
		m.writes.WithLabelValues(string(opKinds[o.kind]), code).Inc()
	}
}
