package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/obs"
	"github.com/corebank/corebank/rpc"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestDeadline(t *testing.T) {
	var seen time.Time
	var calls int
	s := rpc.Chain(func(ctx context.Context, req rpc.Request) rpc.Response {
		calls++
		seen, _ = ctx.Deadline()
		return rpc.Response{}
	}, rpc.Deadline(time.Second))

	t.Run("applies the default when there is none", func(t *testing.T) {
		before := time.Now()
		s(context.Background(), rpc.Request{})
		if seen.Before(before.Add(time.Second)) || seen.After(time.Now().Add(time.Second)) {
			t.Errorf("deadline %v, want 1s after the call", seen)
		}
	})
	t.Run("keeps a longer deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		want, _ := ctx.Deadline()
		s(ctx, rpc.Request{})
		if !seen.Equal(want) {
			t.Errorf("deadline %v, want the caller's %v", seen, want)
		}
	})
	t.Run("fails fast when already expired", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
		defer cancel()
		before := calls
		rsp := s(ctx, rpc.Request{})
		assertErr(t, rsp.Err, errors.Timeout, "deadline exceeded")
		if calls != before {
			t.Error("next was called after the deadline")
		}
	})
	t.Run("fails fast when canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		before := calls
		rsp := s(ctx, rpc.Request{})
		assertErr(t, rsp.Err, errors.Timeout, "canceled")
		if calls != before {
			t.Error("next was called after cancellation")
		}
	})
}

func TestRecover(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	r := newTestRouter()
	rpc.Handle(r, "test", "panic", func(ctx context.Context, req struct{}) (*greetResp, error) {
		var m map[string]int
		m["boom"]++ // assignment to entry in nil map
		return nil, nil
	})
	s := rpc.Chain(r.Service(), rpc.Recover(log))
	ctx := rpc.WithCaller(context.Background(), "authorization")

	_, err := rpc.Call[greetResp](ctx, s, "test", "panic", struct{}{})
	assertErr(t, err, errors.Internal, "internal error")
	if strings.Contains(err.Error(), "nil map") {
		t.Errorf("panic value reached the caller: %v", err)
	}
	l := logBuf.String()
	for _, want := range []string{"level=ERROR", "method=panic", "caller=authorization", "assignment to entry in nil map", "goroutine ", "rpc_test.TestRecover"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	// The process, and the service, carry on.
	got, err := rpc.Call[greetResp](ctx, s, "test", "greet", greetReq{Name: "again", Times: 1})
	if err != nil || got.Greeting != "hello again" {
		t.Errorf("after a panic: %v, %v", got, err)
	}
}

// counter returns the value of corebank_rpc_requests_total with the given
// labels in reg, and whether it exists.
func counter(t *testing.T, reg prometheus.Gatherer, service, method, code string) (float64, bool) {
	t.Helper()
	for _, m := range gather(t, reg, "corebank_rpc_requests_total") {
		if labels(m) == service+"|"+method+"|"+code {
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func gather(t *testing.T, reg prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// labels joins a metric's label values in the order service, method, code.
func labels(m *dto.Metric) string {
	v := map[string]string{}
	for _, l := range m.GetLabel() {
		v[l.GetName()] = l.GetValue()
	}
	s := v["service"] + "|" + v["method"]
	if c, ok := v["code"]; ok {
		s += "|" + c
	}
	return s
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Two filters on one registry share the collectors instead of failing
	// to register.
	s := rpc.Chain(newTestRouter().Service(), rpc.Metrics(reg), rpc.Metrics(reg))
	ctx := context.Background()
	for range 2 {
		if _, err := rpc.Call[greetResp](ctx, s, "test", "greet", greetReq{Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	rpc.Call[greetResp](ctx, s, "test", "fail", failReq{Code: errors.Conflict, Message: "m"})

	// Each call passed two filters, so it is counted twice.
	if v, ok := counter(t, reg, "test", "greet", "ok"); v != 4 {
		t.Errorf("greet ok = %v (present %v), want 4", v, ok)
	}
	if v, ok := counter(t, reg, "test", "fail", "conflict"); v != 2 {
		t.Errorf("fail conflict = %v (present %v), want 2", v, ok)
	}
	if _, ok := counter(t, reg, "test", "fail", "ok"); ok {
		t.Error("a failure was counted as ok")
	}
	var observed uint64
	for _, m := range gather(t, reg, "corebank_rpc_duration_seconds") {
		observed += m.GetHistogram().GetSampleCount()
	}
	if observed != 6 {
		t.Errorf("duration histogram has %d observations, want 6", observed)
	}
}

// Requests for routes nothing serves share one series: their names come
// from the caller, who must not be able to mint series.
func TestMetricsUnknownRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := rpc.Chain(newTestRouter().Service(), rpc.Metrics(reg))
	ctx := context.Background()
	for i := range 5 {
		_, err := rpc.Call[greetResp](ctx, s, fmt.Sprintf("svc%d", i), fmt.Sprintf("m%d", i), greetReq{Name: "x"})
		if errors.CodeOf(err) != errors.NotFound {
			t.Fatalf("unknown route = %v, want not_found", err)
		}
	}
	if v, _ := counter(t, reg, "unknown", "unknown", "not_found"); v != 5 {
		t.Errorf("unknown/unknown not_found = %v, want 5", v)
	}
	if n := len(gather(t, reg, "corebank_rpc_requests_total")); n != 1 {
		t.Errorf("%d request series, want 1", n)
	}
}

func TestMetricsPanicsOnForeignCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "corebank_rpc_requests_total", Help: "not ours",
	}, []string{"other"}))
	defer func() {
		if recover() == nil {
			t.Error("Metrics accepted a registry holding a different metric under its name")
		}
	}()
	rpc.Metrics(reg)
}

func TestTraceAcrossHTTP(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	server := rpc.Chain(newTestRouter().Service(), rpc.Trace(tp.Tracer("server")))
	trs := transports(t, server)
	client := rpc.Chain(trs[1].s, rpc.Trace(tp.Tracer("client")))

	ctx := rpc.WithCaller(context.Background(), "authorization")
	if _, err := rpc.Call[greetResp](ctx, client, "test", "greet", greetReq{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	rpc.Call[greetResp](ctx, client, "test", "fail", failReq{Code: errors.Forbidden, Message: "not you"})

	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans ended, want 4 (client and server, two calls)", len(spans))
	}
	// Servers end first: server greet, client greet, server fail, client fail.
	for i, name := range []string{"test/greet", "test/greet", "test/fail", "test/fail"} {
		if spans[i].Name() != name {
			t.Errorf("span %d named %q, want %q", i, spans[i].Name(), name)
		}
	}
	srv, cli := spans[0], spans[1]
	if srv.InstrumentationScope().Name != "server" || cli.InstrumentationScope().Name != "client" {
		t.Fatalf("span order: %s then %s", srv.InstrumentationScope().Name, cli.InstrumentationScope().Name)
	}
	if srv.SpanContext().TraceID() != cli.SpanContext().TraceID() {
		t.Error("server span is in another trace: traceparent did not cross")
	}
	if srv.Parent().SpanID() != cli.SpanContext().SpanID() || !srv.Parent().IsRemote() {
		t.Errorf("server span's parent %v, want the client span %v (remote)", srv.Parent().SpanID(), cli.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range srv.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["rpc.service"] != "test" || attrs["rpc.method"] != "greet" || attrs["corebank.caller"] != "authorization" {
		t.Errorf("server span attributes %v", attrs)
	}
	if srv.Status().Code == codes.Error {
		t.Error("successful call has error status")
	}

	for _, s := range spans[2:] {
		if s.Status().Code != codes.Error || s.Status().Description != "not you" {
			t.Errorf("%s span of failure: status %v %q", s.InstrumentationScope().Name, s.Status().Code, s.Status().Description)
		}
		var code string
		for _, kv := range s.Attributes() {
			if kv.Key == "corebank.error_code" {
				code = kv.Value.AsString()
			}
		}
		if code != "forbidden" {
			t.Errorf("%s span error code %q, want forbidden", s.InstrumentationScope().Name, code)
		}
	}
}

// A span for a route nothing serves is named "unknown/unknown": span names
// stay few, and a client's path (a card number, say) never reaches the
// trace backend.
func TestTraceDoesNotNameSpansAfterUnknownRoutes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	server := rpc.Chain(newTestRouter().Service(), rpc.Trace(tp.Tracer("server")))
	srv := httptest.NewServer(rpc.NewHTTPHandler(server))
	defer srv.Close()
	const pan = "4599993523778640"
	res, err := http.Post(srv.URL+"/rpc/card/"+pan, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || strings.Contains(string(body), pan) {
		t.Errorf("answered %d %s", res.StatusCode, body)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "unknown/unknown" {
		t.Errorf("span named %q", s.Name())
	}
	for _, kv := range s.Attributes() {
		if strings.Contains(kv.Value.Emit(), pan) {
			t.Errorf("span attribute %s = %q", kv.Key, kv.Value.Emit())
		}
	}
	if strings.Contains(s.Status().Description, pan) {
		t.Errorf("span status %q", s.Status().Description)
	}
}

// The log line that keeps an error's cause carries the trace id of the span
// that failed, also when the caller sent no trace context (curl, the card
// gateway).
func TestHTTPErrorLogCarriesTheServerSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	var logs bytes.Buffer
	server := rpc.Chain(newTestRouter().Service(), rpc.Trace(tp.Tracer("server")))
	srv := httptest.NewServer(rpc.NewHTTPHandler(server, rpc.ErrorLog(obs.NewLogger(&logs, slog.LevelDebug, true))))
	defer srv.Close()
	res, err := http.Post(srv.URL+"/rpc/test/plain", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log: %v: %s", err, logs.Bytes())
	}
	if want := spans[0].SpanContext().TraceID().String(); line["trace_id"] != want || line["route"] != "test/plain" {
		t.Errorf("cause logged as %s; want trace_id %s and route test/plain", logs.Bytes(), want)
	}
}
