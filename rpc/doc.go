// Package rpc is how corebank's services call each other: request and
// response, after Monzo's typhon.
//
// A Service is a function from a Request to a Response; a Filter wraps a
// Service to add behaviour (deadlines, tracing, metrics) around it. A
// Router dispatches to the typed handlers registered with Handle, and Call
// invokes a method and returns its typed result. There are two transports
// and callers cannot tell them apart:
//
//   - In process (embedded mode): the caller's Service is the callee's
//     Router.Service, wrapped in filters. Request and result values are
//     passed as they are, without serialisation.
//   - HTTP (scale-out): NewHTTPClient is a Service that sends requests to a
//     NewHTTPHandler in another process, as JSON over POST
//     /rpc/{service}/{method}, carrying the caller's remaining deadline, its
//     name and its W3C trace context. Errors cross as code and message;
//     their causes stay on the server.
//
// # Filters
//
// One filter per file: Deadline (deadline.go), Recover (recover.go),
// Metrics (metrics.go), Trace (trace.go), Policy (policy.go: which caller
// may call which service/method), From (rpc.go). More will follow the same
// shape, each in its own file:
//
//   - retry.go: retry only errors whose Code is Retryable, only on methods
//     declared idempotent, only within the caller's deadline, under a retry
//     budget, with jittered backoff. A client-side filter.
//   - breaker.go and a concurrency limit: fail fast with Unavailable when a
//     callee is failing or saturated.
//
// The order of the filters is written once, where each service is wired in
// cmd/corebank, not here. A typical server chain is Trace, Metrics,
// Deadline, Policy, Recover, then the Router; a typical client chain is From(own
// name), Trace, Deadline, then the transport.
//
// # Callers
//
// Request.Caller names the calling service. Call fills it from the context
// (WithCaller); on the server side the Router and the HTTP handler put it
// into the handler's context (CallerFrom). A handler that calls onwards
// with its own context would therefore name its caller, not itself: wire
// each service's outgoing Service with From(its name).
package rpc
