package rpc

import (
	"context"
	"fmt"
	"strings"

	"github.com/corebank/corebank/errors"
)

// Grants says which callers may call which methods: "service/method" →
// the callers allowed. "service/*" grants every method of service.
type Grants map[string][]string

// Policy returns a server filter that lets a request reach next only if
// its caller is granted its method: a request that names no caller is
// refused Unauthenticated, one whose caller is not granted the method (or
// a method no grant names) Forbidden, before next runs. Deny by default:
// a method added to a service is refused until a grant names it.
//
// Request.Caller is what the transport says: over the in-process transport
// the calling service's From filter; over HTTP the Corebank-Caller header,
// which only an authenticated transport (mutual TLS, see NewHTTPHandler's
// caller check) makes more than a claim. It panics on a malformed grant.
func Policy(g Grants) Filter {
	allowed := make(map[string]map[string]bool, len(g))
	for route, callers := range g {
		service, method, ok := strings.Cut(route, "/")
		if !ok || service == "" || method == "" || strings.Contains(method, "/") {
			panic(fmt.Sprintf("rpc: Policy: grant %q: want service/method or service/*", route))
		}
		set := make(map[string]bool, len(callers))
		for _, c := range callers {
			if c == "" || !ValidCaller(c) {
				panic(fmt.Sprintf("rpc: Policy: grant %q: caller %q", route, c))
			}
			set[c] = true
		}
		allowed[route] = set
	}
	return func(ctx context.Context, req Request, next Service) Response {
		if req.Caller == "" {
			return Response{Err: errors.New(errors.Unauthenticated, "the caller is not named")}
		}
		if allowed[req.Service+"/"+req.Method][req.Caller] || allowed[req.Service+"/*"][req.Caller] {
			return next(ctx, req)
		}
		return Response{Err: errors.Errorf(errors.Forbidden, "the caller may not call %s/%s", req.Service, req.Method)}
	}
}
