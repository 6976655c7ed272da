// Package rpctest serves an RPC router over both transports for tests of a
// service's Client: callers must not be able to tell them apart.
package rpctest

import (
	"net/http/httptest"
	"testing"

	"github.com/corebank/corebank/rpc"
)

// Transport is one way of reaching a router.
type Transport struct {
	Name string      // "in-process" or "http"
	RPC  rpc.Service // the router through that transport
}

// Transports returns r in process and over HTTP (a test server closed when
// t ends).
func Transports(t testing.TB, r *rpc.Router) []Transport {
	t.Helper()
	srv := httptest.NewServer(rpc.NewHTTPHandler(r.Service()))
	t.Cleanup(srv.Close)
	return []Transport{
		{"in-process", r.Service()},
		{"http", rpc.NewHTTPClient(srv.URL, srv.Client())},
	}
}
