package rpc

import (
	"context"
	"fmt"
	"time"

	"github.com/corebank/corebank/errors"
)

// Deadline returns a filter that gives a request without a deadline one d
// away, so no call can wait forever, and fails a request whose context has
// already ended with Timeout at once, without calling next: its caller has
// stopped waiting. A deadline the context already has is kept, longer or
// shorter than d. It panics if d is not positive.
func Deadline(d time.Duration) Filter {
	if d <= 0 {
		panic(fmt.Sprintf("rpc: Deadline(%v): not positive", d))
	}
	return func(ctx context.Context, req Request, next Service) Response {
		if err := ctx.Err(); err != nil {
			msg := "deadline exceeded"
			if err == context.Canceled {
				msg = "canceled"
			}
			return Response{Err: errors.Wrap(err, errors.Timeout, msg)}
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return next(ctx, req)
	}
}
