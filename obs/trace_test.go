package obs_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/corebank/corebank/obs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
)

func TestRecentKeepsNewestSpans(t *testing.T) {
	ctx := context.Background()
	tr, err := obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: "test", Recent: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	tracer := tr.Tracer("test")

	pctx, parent := tracer.Start(ctx, "parent")
	for _, name := range []string{"a", "b", "c"} {
		_, s := tracer.Start(pctx, name)
		s.SetAttributes(attribute.String("rpc.method", name), attribute.Int("n", 7))
		if name == "c" {
			s.SetStatus(codes.Error, "boom")
		}
		s.End()
	}
	parent.End()

	got := tr.Recent()
	if len(got) != 3 {
		t.Fatalf("Recent() has %d spans, want 3", len(got))
	}
	if got[0].Name != "parent" || got[1].Name != "c" || got[2].Name != "b" {
		t.Fatalf("Recent() = %s, %s, %s; want parent, c, b (newest first, a dropped)", got[0].Name, got[1].Name, got[2].Name)
	}
	ps, c := got[0], got[1]
	if ps.Parent != "" {
		t.Errorf("root span has parent %q", ps.Parent)
	}
	if c.Parent != ps.SpanID || c.TraceID != ps.TraceID {
		t.Errorf("child c: parent %s trace %s, want parent %s trace %s", c.Parent, c.TraceID, ps.SpanID, ps.TraceID)
	}
	if c.Status != "error" || c.StatusMessage != "boom" {
		t.Errorf("c status = %q %q, want error boom", c.Status, c.StatusMessage)
	}
	if got[2].Status != "unset" {
		t.Errorf("b status = %q, want unset", got[2].Status)
	}
	if c.Attributes["rpc.method"] != "c" || c.Attributes["n"] != "7" {
		t.Errorf("c attributes = %v", c.Attributes)
	}
	if c.Start.IsZero() || c.Duration < 0 {
		t.Errorf("c start %v duration %v", c.Start, c.Duration)
	}
	if ps.Duration < c.Duration {
		t.Errorf("parent lasted %v, less than its child's %v", ps.Duration, c.Duration)
	}
}

func TestRecentZeroKeepsNothing(t *testing.T) {
	ctx := context.Background()
	tr, err := obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	_, s := tr.Tracer("test").Start(ctx, "x")
	s.End()
	if got := tr.Recent(); got != nil {
		t.Errorf("Recent() = %v, want nil", got)
	}
	if !s.SpanContext().IsValid() {
		t.Error("span without recent view or exporter is not real")
	}
}

func TestOTLPExportOnShutdown(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	ctx := context.Background()
	tr, err := obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: "test", OTLPEndpoint: collector.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tr.Tracer("test").Start(ctx, "exported")
	s.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if posts.Load() == 0 {
		t.Error("no OTLP export reached the collector's /v1/traces")
	}
}

func TestBadConfig(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]obs.TraceConfig{
		"no service name":      {},
		"endpoint not a URL":   {ServiceName: "x", OTLPEndpoint: "collector:4318"},
		"negative recent size": {ServiceName: "x", Recent: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := obs.NewTracerProvider(ctx, cfg); err == nil {
				t.Error("NewTracerProvider succeeded")
			}
		})
	}
}

func TestPropagatorIsW3C(t *testing.T) {
	ctx := context.Background()
	tr, err := obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	sctx, s := tr.Tracer("test").Start(ctx, "x")
	defer s.End()
	h := http.Header{}
	tr.Propagator.Inject(sctx, propagation.HeaderCarrier(h))
	want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
	if got := h.Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
}
