package rpc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/corebank/corebank/errors"
)

// Request is one call of a method on a service.
type Request struct {
	Service string // the service called, "ledger"
	Method  string // the method called, "transfer"
	// Caller names the calling service ("authorization"). The client side
	// sets it: Call copies it from the context (WithCaller), and From
	// overrides it with a fixed name.
	Caller string
	// Body is the request value. In process it is whatever value Call was
	// given (ledger.TransferRequest or *ledger.TransferRequest); on the
	// server side of the HTTP transport it is the request's JSON, as a
	// json.RawMessage. The Router accepts all three.
	Body any
}

// Response is the outcome of a Request: a result or an error, never both.
type Response struct {
	// Body is the result. In process it is the handler's typed result (a
	// pointer, shared with the handler: neither side may modify it
	// afterwards); on the client side of the HTTP transport it is the
	// response's JSON, as a json.RawMessage. Call accepts both.
	Body any
	// Err is the failure, an *errors.Error whose code says what the caller
	// may do about it. Only its code and message cross the HTTP transport.
	Err error
}

// Service handles requests. A service's handlers behind a Router, a
// transport's client, and any of those wrapped in filters are all Services,
// so callers cannot tell what is behind one.
type Service func(ctx context.Context, req Request) Response

// Filter is middleware: it may inspect or change the request, call next (or
// not), and inspect or change the response.
type Filter func(ctx context.Context, req Request, next Service) Response

// Filter returns s wrapped in f: f runs first and decides whether and how
// to call s.
func (s Service) Filter(f Filter) Service {
	return func(ctx context.Context, req Request) Response { return f(ctx, req, s) }
}

// Chain returns s wrapped in the filters fs, fs[0] outermost: a request
// passes fs[0], fs[1], ... and then reaches s.
func Chain(s Service, fs ...Filter) Service {
	for i := len(fs) - 1; i >= 0; i-- {
		s = s.Filter(fs[i])
	}
	return s
}

// Call invokes service/method on s with req and returns the typed result.
// It works the same whatever transport s is: in process, req is passed as
// is and the handler's *Resp is returned as is (no copying, no JSON); over
// HTTP, the result is decoded from JSON into a new Resp. A handler's nil
// result is nil on both. The caller named in ctx (WithCaller) goes along as
// Request.Caller.
//
// The error is the service's *errors.Error (act on its code), or one from
// the transport: Timeout when ctx's deadline passed, Unavailable when the
// service could not be reached, Internal when the result is not a Resp.
func Call[Resp any](ctx context.Context, s Service, service, method string, req any) (*Resp, error) {
	rsp := s(ctx, Request{Service: service, Method: method, Caller: CallerFrom(ctx), Body: req})
	if rsp.Err != nil {
		return nil, rsp.Err
	}
	switch b := rsp.Body.(type) {
	case *Resp:
		return b, nil
	case nil:
		return nil, nil
	case json.RawMessage:
		return decodeResponse[Resp](service, method, b)
	case Resp:
		return &b, nil
	default:
		var want *Resp
		return nil, errors.Errorf(errors.Internal, "%s/%s: response body is %T, want %T", service, method, rsp.Body, want)
	}
}

// decodeResponse decodes a JSON result. Unknown fields are ignored, so a
// server may add fields before its clients learn them.
func decodeResponse[Resp any](service, method string, b json.RawMessage) (*Resp, error) {
	if isNull(b) {
		return nil, nil
	}
	r := new(Resp)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, errors.Wrap(err, errors.Internal, fmt.Sprintf("%s/%s: malformed response body", service, method))
	}
	return r, nil
}

// callerKey is the context key of the caller's name.
type callerKey struct{}

// WithCaller returns ctx naming the calling service. On the client side it
// says who is calling (Call sends it as Request.Caller); on the server side
// the transport and the Router set it to the caller named in the request,
// so a handler learns who called it from CallerFrom.
func WithCaller(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, callerKey{}, name)
}

// CallerFrom returns the calling service named in ctx, or "" if none.
func CallerFrom(ctx context.Context) string {
	name, _ := ctx.Value(callerKey{}).(string)
	return name
}

// MaxCallerLen is the longest caller name a request may carry.
const MaxCallerLen = 64

// ValidCaller reports whether name may be a Request.Caller: empty (no
// caller named), or 1 to MaxCallerLen characters of [A-Za-z0-9_.:-]. A
// caller's name is recorded (audit rows, events, logs, spans), so it is
// bounded and plain.
func ValidCaller(name string) bool {
	if len(name) > MaxCallerLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// NamedCaller reports whether name names a caller: ValidCaller and not
// empty. A grant, a certificate's Common Name and a process's own name
// must.
func NamedCaller(name string) bool { return name != "" && ValidCaller(name) }

// errCaller refuses a request whose caller name is not ValidCaller's.
var errCaller = errors.Errorf(errors.BadRequest, "the caller's name must be 1 to %d characters of [A-Za-z0-9_.:-]", MaxCallerLen)

// From returns a filter that names service as the caller of every request
// that passes it, whatever the context says. Put it on the Service a
// service uses to call others, so that a handler calling onwards is named
// itself, not the service that called it (which is what its context holds).
func From(service string) Filter {
	return func(ctx context.Context, req Request, next Service) Response {
		req.Caller = service
		return next(ctx, req)
	}
}
