package rpc

import (
	"context"
	"fmt"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/obs"
)

// Metrics returns a filter that counts requests and times them, in
//
//	corebank_rpc_requests_total{service,method,code}   code "ok" or an error code
//	corebank_rpc_duration_seconds{service,method}      a histogram
//
// registered in reg. It belongs on server chains: on a client chain too,
// an in-process call would be counted twice under the same labels. Calling
// Metrics again with the same registry (one filter per served service, say)
// shares the collectors. It panics if reg holds different metrics under
// those names: a wiring mistake.
func Metrics(reg prometheus.Registerer) Filter {
	requests := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "corebank",
		Subsystem: "rpc",
		Name:      "requests_total",
		Help:      "RPC requests handled, by service, method and outcome (ok or an error code).",
	}, []string{"service", "method", "code"}))
	duration := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "corebank",
		Subsystem: "rpc",
		Name:      "duration_seconds",
		Help:      "Time to answer an RPC request, by service and method.",
		Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"service", "method"}))

	return func(ctx context.Context, req Request, next Service) Response {
		start := time.Now()
		rsp := next(ctx, req)
		req.Service, req.Method = countedAs(req, rsp.Err)
		duration.WithLabelValues(req.Service, req.Method).Observe(time.Since(start).Seconds())
		code := "ok"
		if rsp.Err != nil {
			code = string(errors.CodeOf(rsp.Err))
		}
		requests.WithLabelValues(req.Service, req.Method, code).Inc()
		return rsp
	}
}

// register registers c in reg, or returns the collector of the same
// description already there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := obs.Register(reg, c)
	if err != nil {
		panic(fmt.Sprintf("rpc: Metrics: %v", err))
	}
	return c
}
