package obs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/corebank/corebank/obs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLoggerAddsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log := obs.NewLogger(&buf, slog.LevelInfo, true)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()) })

	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.With("service", "ledger").InfoContext(ctx, "hold placed", "hold", "h1")
	span.End()

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, buf.Bytes())
	}
	sc := span.SpanContext()
	if got, want := rec["trace_id"], sc.TraceID().String(); got != want {
		t.Errorf("trace_id = %v, want %v", got, want)
	}
	if got, want := rec["span_id"], sc.SpanID().String(); got != want {
		t.Errorf("span_id = %v, want %v", got, want)
	}
	if rec["msg"] != "hold placed" || rec["hold"] != "h1" || rec["service"] != "ledger" {
		t.Errorf("record lost its own fields: %v", rec)
	}
}

func TestLoggerWithoutSpanHasNoIDs(t *testing.T) {
	var buf bytes.Buffer
	log := obs.NewLogger(&buf, slog.LevelInfo, false)
	log.InfoContext(context.Background(), "started")
	line := buf.String()
	if !strings.Contains(line, "msg=started") {
		t.Fatalf("text log line = %q, want msg=started", line)
	}
	if strings.Contains(line, "trace_id") || strings.Contains(line, "span_id") {
		t.Errorf("log line without a span has ids: %q", line)
	}
}

func TestLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	log := obs.NewLogger(&buf, slog.LevelWarn, true)
	log.Info("quiet")
	if buf.Len() != 0 {
		t.Errorf("info record written at warn level: %s", buf.Bytes())
	}
	log.Warn("loud")
	if !strings.Contains(buf.String(), `"msg":"loud"`) {
		t.Errorf("warn record missing: %q", buf.String())
	}
}
