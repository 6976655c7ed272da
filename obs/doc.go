// Package obs is corebank's observability: structured logs that carry trace
// ids, Prometheus metrics, and OpenTelemetry traces.
//
// Nothing here touches a global. The wiring in cmd/corebank builds one
// logger, one registry and one Tracing per process and hands them to the
// services and RPC filters that need them:
//
//   - NewLogger returns a log/slog logger whose records carry the trace_id
//     and span_id of the span in the context they were logged with (use the
//     ...Context methods: log.InfoContext(ctx, ...)).
//   - NewRegistry returns a Prometheus registry with the Go runtime and
//     process collectors; MetricsHandler serves it. Every metric corebank
//     defines is named corebank_... (see Namespace).
//   - NewTracerProvider returns a Tracing: spans are exported over OTLP/HTTP
//     when an endpoint is configured (scale-out), and the most recent
//     finished spans are kept in memory for the embedded status page.
//     Trace context crosses process boundaries as W3C traceparent headers
//     (Propagator).
package obs
