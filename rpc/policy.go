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
// its caller is granted its method: a request for a method no grant names
// is refused Forbidden (and counted and traced as an unknown route, as the
// Router counts one it does not serve); one that names no caller,
// Unauthenticated; one whose caller is not granted the method, Forbidden;
// all before next runs. Deny by default:
// a method added to a service is refused until a grant names it.
//
// Request.Caller is what the transport says: over the in-process transport
// the calling service's From filter; over HTTP the Corebank-Caller header,
// which only an authenticated transport (mutual TLS, see NewHTTPHandler's
// caller check) makes more than a claim. It panics on a malformed grant.
func Policy(g Grants) Filter {
	// Keyed by the Router's route: no string is built per request.
	allowed := make(map[route]map[string]bool, len(g))
	for name, callers := range g {
		service, method, ok := strings.Cut(name, "/")
		if !ok || service == "" || method == "" || strings.Contains(method, "/") {
			panic(fmt.Sprintf("rpc: Policy: grant %q: want service/method or service/*", name))
		}
		set := make(map[string]bool, len(callers))
		for _, c := range callers {
			if !NamedCaller(c) {
				panic(fmt.Sprintf("rpc: Policy: grant %q: caller %q", name, c))
			}
			set[c] = true
		}
		allowed[route{service, method}] = set
	}
	return func(ctx context.Context, req Request, next Service) Response {
		callers, wild := allowed[route{req.Service, req.Method}], allowed[route{req.Service, "*"}]
		if callers == nil && wild == nil {
			// No grant names it: as the Router does for a route nothing
			// serves, it is counted and traced as unknown and never
			// echoed (its name is the request's path, anyone's to mint).
			return Response{Err: errors.Wrap(errUnknownMethod, errors.Forbidden, "the caller may not call "+shownRoute(req.Service+"/"+req.Method))}
		}
		if req.Caller == "" {
			return Response{Err: errors.New(errors.Unauthenticated, "the caller is not named")}
		}
		if callers[req.Caller] || wild[req.Caller] {
			return next(ctx, req)
		}
		return Response{Err: errors.New(errors.Forbidden, "the caller may not call "+shownRoute(req.Service+"/"+req.Method))}
	}
}
