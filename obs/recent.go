package obs

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SpanSummary is a finished span as the recent-traces view shows it.
type SpanSummary struct {
	Name     string        `json:"name"`
	TraceID  string        `json:"trace_id"`
	SpanID   string        `json:"span_id"`
	Parent   string        `json:"parent,omitempty"` // the parent's span id; empty for a root span
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	// Status is "unset", "ok" or "error"; StatusMessage says why for an error.
	Status        string `json:"status"`
	StatusMessage string `json:"status_message,omitempty"`
	// Attributes are the span's attributes as strings. The map is shared
	// between calls of Recent: read it, do not modify it.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// recentSpans is a span processor that keeps summaries of the last n
// finished spans in a ring.
type recentSpans struct {
	mu   sync.Mutex
	ring []SpanSummary
	next int  // where the next summary goes
	full bool // the ring has wrapped
}

func newRecentSpans(n int) *recentSpans {
	return &recentSpans{ring: make([]SpanSummary, n)}
}

func (r *recentSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (r *recentSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	sum := SpanSummary{
		Name:          s.Name(),
		TraceID:       s.SpanContext().TraceID().String(),
		SpanID:        s.SpanContext().SpanID().String(),
		Start:         s.StartTime(),
		Duration:      s.EndTime().Sub(s.StartTime()),
		Status:        statusName(s.Status().Code),
		StatusMessage: s.Status().Description,
	}
	if p := s.Parent(); p.IsValid() {
		sum.Parent = p.SpanID().String()
	}
	if attrs := s.Attributes(); len(attrs) > 0 {
		sum.Attributes = make(map[string]string, len(attrs))
		for _, kv := range attrs {
			sum.Attributes[string(kv.Key)] = kv.Value.Emit()
		}
	}
	r.mu.Lock()
	r.ring[r.next] = sum
	r.next++
	if r.next == len(r.ring) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// list returns the kept summaries, newest first.
func (r *recentSpans) list() []SpanSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.ring)
	}
	out := make([]SpanSummary, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.next-i+len(r.ring))%len(r.ring)])
	}
	return out
}

func (r *recentSpans) Shutdown(context.Context) error   { return nil }
func (r *recentSpans) ForceFlush(context.Context) error { return nil }

// statusName names a span status code in the view's words.
func statusName(c codes.Code) string {
	switch c {
	case codes.Error:
		return "error"
	case codes.Ok:
		return "ok"
	default:
		return "unset"
	}
}
