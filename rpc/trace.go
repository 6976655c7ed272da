package rpc

import (
	"context"

	"github.com/corebank/corebank/errors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Trace returns a filter that records each request as a span of t, named
// "service/method", a child of the span in the context (which the HTTP
// transport restores from the caller's traceparent). The span carries the
// service, method and caller, and for a failure the error code and an
// error status with the error's public message; causes stay in the log.
func Trace(t trace.Tracer) Filter {
	return func(ctx context.Context, req Request, next Service) Response {
		ctx, span := t.Start(ctx, req.Service+"/"+req.Method, trace.WithAttributes(
			attribute.String("rpc.system", "corebank"),
			attribute.String("rpc.service", req.Service),
			attribute.String("rpc.method", req.Method),
			attribute.String("corebank.caller", req.Caller),
		))
		defer span.End()
		if slot, ok := ctx.Value(spanSlotKey{}).(*spanSlot); ok && !slot.sc.IsValid() {
			slot.sc = span.SpanContext() // the outermost span
		}
		rsp := next(ctx, req)
		if service, method := countedAs(req, rsp.Err); service != req.Service || method != req.Method {
			span.SetName(service + "/" + method)
			span.SetAttributes(attribute.String("rpc.service", service), attribute.String("rpc.method", method))
		}
		if rsp.Err != nil {
			pub := errors.Public(rsp.Err)
			span.SetAttributes(attribute.String("corebank.error_code", string(pub.Code)))
			span.SetStatus(codes.Error, pub.Message)
		}
		return rsp
	}
}

// spanSlot receives the span context of the outermost span Trace starts
// for a request, so that the transport that serves it can log under it.
type spanSlot struct{ sc trace.SpanContext }

type spanSlotKey struct{}

// withSpanSlot returns ctx with an empty slot for Trace to fill.
func withSpanSlot(ctx context.Context) (context.Context, *spanSlot) {
	s := new(spanSlot)
	return context.WithValue(ctx, spanSlotKey{}, s), s
}
