package obs

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TraceConfig says where a process's spans go.
type TraceConfig struct {
	// ServiceName names the process in every span's resource (service.name),
	// "corebank" in embedded mode, the service's name in scale-out.
	ServiceName string
	// OTLPEndpoint is the URL of an OTLP/HTTP collector, such as
	// "http://otel-collector:4318". A URL without a path sends to the
	// standard /v1/traces; a URL with a path sends to exactly that path.
	// Empty means spans are not exported.
	OTLPEndpoint string
	// Recent is how many of the most recently finished spans to keep in
	// memory for Tracing.Recent. Zero keeps none.
	Recent int
	// Log receives what the OpenTelemetry SDK reports going wrong (an
	// export the collector refused, say), at level Warn, in the process's
	// log format. The SDK's handler is process-wide: the last provider
	// made with a Log sets it. Nil leaves the SDK's, which prints through
	// the standard log package.
	Log *slog.Logger
}

// Tracing is a process's OpenTelemetry tracing: the provider to create
// tracers from, the W3C propagator, and the in-memory view of recent spans.
type Tracing struct {
	// Provider creates tracers. Hand it (or a Tracer from it) to whatever
	// starts spans, such as the rpc.Trace filter.
	Provider trace.TracerProvider
	// Propagator carries trace context across process boundaries as W3C
	// traceparent and tracestate headers.
	Propagator propagation.TextMapPropagator

	sdk    *sdktrace.TracerProvider
	recent *recentSpans // nil when TraceConfig.Recent is zero
}

// NewTracerProvider returns a Tracing configured by cfg. Every span is
// sampled unless its remote parent says otherwise. Export over OTLP is
// batched and happens in the background; Shutdown flushes what is left.
// ctx bounds only the setup, not the provider's lifetime.
func NewTracerProvider(ctx context.Context, cfg TraceConfig) (*Tracing, error) {
	if cfg.ServiceName == "" {
		return nil, fmt.Errorf("obs: tracing: service name is empty")
	}
	if cfg.Recent < 0 {
		return nil, fmt.Errorf("obs: tracing: recent span count %d is negative", cfg.Recent)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
	)
	if err != nil {
		return nil, fmt.Errorf("obs: tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if cfg.Log != nil {
		log := cfg.Log
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing: the OpenTelemetry SDK reports an error", "err", err)
		}))
	}
	if cfg.OTLPEndpoint != "" {
		endpoint, err := otlpURL(cfg.OTLPEndpoint)
		if err != nil {
			return nil, fmt.Errorf("obs: tracing: %w", err)
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("obs: tracing: OTLP exporter for %s: %w", endpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	t := &Tracing{Propagator: propagation.TraceContext{}}
	if cfg.Recent > 0 {
		t.recent = newRecentSpans(cfg.Recent)
		opts = append(opts, sdktrace.WithSpanProcessor(t.recent))
	}
	t.sdk = sdktrace.NewTracerProvider(opts...)
	t.Provider = t.sdk
	return t, nil
}

// otlpURL checks an OTLP endpoint and gives it the standard traces path if
// it has none.
func otlpURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("OTLP endpoint %q: want a URL such as http://otel-collector:4318", endpoint)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Tracer returns the tracer for the instrumentation called name, by
// convention the import path of the package that starts the spans.
func (t *Tracing) Tracer(name string) trace.Tracer {
	return t.Provider.Tracer(name)
}

// Recent returns the most recently finished spans, newest first, at most
// TraceConfig.Recent of them. It is the embedded mode's view of traces, for
// the status page; it returns nil when Recent is zero.
func (t *Tracing) Recent() []SpanSummary {
	if t.recent == nil {
		return nil
	}
	return t.recent.list()
}

// Shutdown ends spans' export: it flushes the spans not yet exported and
// stops the exporter, giving up when ctx is done. Spans started afterwards
// are dropped. The recent-span view stays readable.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("obs: tracing shutdown: %w", err)
	}
	return nil
}
