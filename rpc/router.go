package rpc

import (
	"context"
	"encoding/json"
	stderrors "errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corebank/corebank/errors"
)

// Router is the server side of a set of services: it dispatches each
// request to the handler registered for its service and method. Register
// every handler with Handle while wiring, then serve Router.Service.
type Router struct {
	mu       sync.Mutex                        // serialises Handle
	handlers atomic.Pointer[map[route]handler] // replaced, never changed, so dispatch needs no lock
}

// route names a handler.
type route struct{ service, method string }

// handler is a registered method with its body conversion built in: it
// takes any Request.Body the Router accepts and returns the typed result.
type handler func(ctx context.Context, body any) (any, error)

// NewRouter returns a Router with no handlers.
func NewRouter() *Router {
	r := &Router{}
	r.handlers.Store(&map[route]handler{})
	return r
}

// Handle registers fn as service/method on r. fn receives the request as a
// Req value and returns a *Resp or an error, preferably an *errors.Error
// (any other error reaches the caller as Internal, "internal error", with
// the original as its cause). The request body may arrive as a Req, a *Req
// (nil is Req's zero value, as JSON null is), or JSON, which is decoded
// strictly: unknown fields, trailing data and malformed JSON are
// BadRequest. Any other body type is BadRequest too.
//
// Handle panics if a name is empty or holds a "/", if fn is nil, or if
// service/method is already registered: these are wiring mistakes.
func Handle[Req, Resp any](r *Router, service, method string, fn func(ctx context.Context, req Req) (*Resp, error)) {
	for _, n := range []string{service, method} {
		if n == "" || strings.Contains(n, "/") {
			panic(fmt.Sprintf("rpc: Handle: bad name %q in %s/%s", n, service, method))
		}
	}
	if fn == nil {
		panic(fmt.Sprintf("rpc: Handle: nil handler for %s/%s", service, method))
	}
	name := service + "/" + method
	wantType := reflect.TypeFor[Req]().String()
	h := func(ctx context.Context, body any) (any, error) {
		var req Req
		switch b := body.(type) {
		case Req:
			req = b
		case *Req:
			if b != nil {
				req = *b
			}
		case json.RawMessage:
			var err error
			if req, err = decodeJSON[Req](name, b); err != nil {
				return nil, err
			}
		case nil:
			// No body: the zero Req, as JSON null decodes to.
		default:
			return nil, errors.Errorf(errors.BadRequest, "%s: request body is %T, want %s", name, body, wantType)
		}
		rsp, err := fn(ctx, req)
		return rsp, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.handlers.Load()
	k := route{service, method}
	if _, dup := old[k]; dup {
		panic(fmt.Sprintf("rpc: Handle: %s registered twice", name))
	}
	m := make(map[route]handler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = h
	r.handlers.Store(&m)
}

// decodeJSON decodes a request body. It is a function of its own so that
// the handler's Req stays on the stack when the body is not JSON.
func decodeJSON[Req any](name string, b []byte) (Req, error) {
	var req Req
	err := decodeRequest(name, b, &req)
	return req, err
}

// Service returns the Service that dispatches requests to r's handlers.
// An unknown service or method is NotFound. The handler's context names
// Request.Caller as its caller (CallerFrom), as the HTTP transport's does.
// Errors that are not an *errors.Error are wrapped in one (see Handle).
func (r *Router) Service() Service {
	return r.serve
}

// shownRoute is a route a request named, as errors and logs may show it:
// as named if it is short and plain, else by its length only (it comes
// from a client, and could be a card number).
func shownRoute(r string) string {
	digits := 0
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == '.', c == '/', c == '-', c == ':':
		default:
			digits = 12 // not plain
		}
	}
	if len(r) > 2*MaxCallerLen+1 || digits >= 12 {
		return fmt.Sprintf("(a name of %d characters, not shown)", len(r))
	}
	return r
}

// countedAs is the service and method a request is counted and traced under:
// its own, or "unknown" for both when nothing serves its route (names from
// a request's path, which anyone could mint at will).
func countedAs(req Request, err error) (service, method string) {
	if errors.IsErr(err, errUnknownMethod) {
		return "unknown", "unknown"
	}
	return req.Service, req.Method
}

// errUnknownMethod is the cause of a request for a route no handler serves,
// so that filters can tell it from a handler's NotFound.
var errUnknownMethod = stderrors.New("rpc: unknown method")

func (r *Router) serve(ctx context.Context, req Request) Response {
	h, ok := (*r.handlers.Load())[route{req.Service, req.Method}]
	if !ok {
		return Response{Err: errors.Wrap(errUnknownMethod, errors.NotFound, "unknown method "+shownRoute(req.Service+"/"+req.Method))}
	}
	if !ValidCaller(req.Caller) {
		return Response{Err: errCaller}
	}
	if CallerFrom(ctx) != req.Caller {
		ctx = WithCaller(ctx, req.Caller)
	}
	body, err := h(ctx, req.Body)
	if err != nil {
		if e := vocabulary(err); e != nil {
			return Response{Err: e}
		}
	}
	return Response{Body: body}
}

// vocabulary returns err as an *errors.Error: itself if it is one, or else
// one with the code and message errors.CodeOf and errors.MessageOf give it,
// and err as its cause. A nil *errors.Error, the classic typed-nil slip
// (returning a nil *errors.Error variable as an error), is no error.
func vocabulary(err error) *errors.Error {
	if e, ok := err.(*errors.Error); ok {
		return e
	}
	return errors.Wrap(err, errors.CodeOf(err), errors.MessageOf(err))
}

// Methods returns the names of r's registered methods, sorted, in the
// form "service.ledger/transfer", for listings and status pages.
func (r *Router) Methods() []string {
	m := *r.handlers.Load()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, "service."+k.service+"/"+k.method)
	}
	slices.Sort(names)
	return names
}
