package rpc

import (
	"context"
	"log/slog"
	"runtime/debug"

	"github.com/corebank/corebank/errors"
)

// Recover returns a filter that turns a panic in next into an Internal
// error, so one bad request cannot take the process down. The panic value
// and stack are logged to log, with the request's service, method and
// caller; the caller sees only "internal error". It is the innermost
// filter of a server chain, next to the Router, so that the filters
// outside it (metrics, tracing) see the failure as an ordinary error.
func Recover(log *slog.Logger) Filter {
	return func(ctx context.Context, req Request, next Service) (rsp Response) {
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "rpc: handler panicked",
					"service", req.Service, "method", req.Method, "caller", req.Caller,
					"panic", p, "stack", string(debug.Stack()))
				rsp = Response{Err: errors.New(errors.Internal, "internal error")}
			}
		}()
		return next(ctx, req)
	}
}
