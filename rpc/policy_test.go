package rpc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
	"github.com/prometheus/client_golang/prometheus"
)

// A request reaches the handler only if a grant names its caller for its
// method; otherwise it is refused before the handler runs: no caller is
// unauthenticated, any other caller or an ungranted method forbidden.
func TestPolicy(t *testing.T) {
	var reached []string
	next := func(ctx context.Context, req rpc.Request) rpc.Response {
		reached = append(reached, req.Caller+"→"+req.Service+"/"+req.Method)
		return rpc.Response{Body: "ok"}
	}
	s := rpc.Chain(next, rpc.Policy(rpc.Grants{
		"card/reveal": {"api"},
		"card/lookup": {"authorization", "clearing"},
		"clearing/*":  {"operator"},
	}))
	for _, c := range []struct {
		caller, service, method string
		want                    errors.Code // "" passes
	}{
		{"api", "card", "reveal", ""},
		{"authorization", "card", "lookup", ""},
		{"clearing", "card", "lookup", ""},
		{"operator", "clearing", "ingest", ""},
		{"operator", "clearing", "get_file", ""},
		{"", "card", "reveal", errors.Unauthenticated},
		{"cardnet", "card", "reveal", errors.Forbidden},
		{"authorization", "card", "reveal", errors.Forbidden},
		{"api", "card", "lookup", errors.Forbidden},
		{"api", "card", "issue", errors.Forbidden},           // no grant names it
		{"operator", "ledger", "transfer", errors.Forbidden}, // clearing/* is clearing's only
		{"api", "cardx", "reveal", errors.Forbidden},
	} {
		reached = nil
		rsp := s(context.Background(), rpc.Request{Caller: c.caller, Service: c.service, Method: c.method})
		if got := errors.CodeOf(rsp.Err); c.want == "" && rsp.Err != nil || c.want != "" && got != c.want {
			t.Errorf("%q calling %s/%s: %v, want %q", c.caller, c.service, c.method, rsp.Err, c.want)
		}
		if passed := len(reached) == 1; passed != (c.want == "") {
			t.Errorf("%q calling %s/%s reached the handler: %v", c.caller, c.service, c.method, passed)
		}
	}
}

// Over HTTP the refusals are 401 and 403, and the caller is the header's.
func TestPolicyOverHTTP(t *testing.T) {
	r := rpc.NewRouter()
	rpc.Handle(r, "card", "reveal", func(ctx context.Context, req struct{}) (*string, error) {
		s := "secret"
		return &s, nil
	})
	srv := httptest.NewServer(rpc.NewHTTPHandler(rpc.Chain(r.Service(), rpc.Policy(rpc.Grants{"card/reveal": {"api"}}))))
	defer srv.Close()
	for caller, want := range map[string]int{"": http.StatusUnauthorized, "cardnet": http.StatusForbidden, "api": http.StatusOK} {
		req, _ := http.NewRequest("POST", srv.URL+"/rpc/card/reveal", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if caller != "" {
			req.Header.Set(rpc.HeaderCaller, caller)
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != want {
			t.Errorf("caller %q: status %d, want %d", caller, rsp.StatusCode, want)
		}
	}
	client := rpc.NewHTTPClient(srv.URL, nil).Filter(rpc.From("api"))
	got, err := rpc.Call[string](context.Background(), client, "card", "reveal", struct{}{})
	if err != nil || *got != "secret" {
		t.Errorf("granted call = %v, %v", got, err)
	}
}

func TestPolicyRefusesMalformedGrants(t *testing.T) {
	for _, g := range []rpc.Grants{{"card": {"api"}}, {"/reveal": {"api"}}, {"card/": {"api"}}, {"card/reveal": {""}}, {"card/reveal": {"a b"}}, {"card/a/b": {"api"}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Policy(%v) did not panic", g)
				}
			}()
			rpc.Policy(g)
		}()
	}
}

// A method no grant names is counted under "unknown", as the Router counts
// a route it does not serve: the name is the request's path, anyone's to
// mint (a new metric series per name, or a card number put there).
func TestPolicyCountsUngrantedRoutesAsUnknown(t *testing.T) {
	reg := prometheus.NewRegistry()
	next := func(ctx context.Context, req rpc.Request) rpc.Response { return rpc.Response{Body: "ok"} }
	s := rpc.Chain(next, rpc.Metrics(reg), rpc.Policy(rpc.Grants{"card/reveal": {"api"}}))
	const pan = "4571736012345678"
	for _, method := range []string{"m1", "m2", pan} {
		rsp := s(context.Background(), rpc.Request{Caller: "api", Service: "card", Method: method})
		if errors.CodeOf(rsp.Err) != errors.Forbidden || strings.Contains(rsp.Err.Error(), pan) {
			t.Errorf("card/%s: %v, want forbidden, not echoing the name", method, rsp.Err)
		}
	}
	s(context.Background(), rpc.Request{Caller: "cardnet", Service: "card", Method: "reveal"})
	if n, ok := counter(t, reg, "unknown", "unknown", string(errors.Forbidden)); !ok || n != 3 {
		t.Errorf("unknown/unknown forbidden = %v (%v), want 3", n, ok)
	}
	if n, ok := counter(t, reg, "card", "reveal", string(errors.Forbidden)); !ok || n != 1 {
		t.Errorf("card/reveal forbidden = %v (%v), want 1: a granted route keeps its name", n, ok)
	}
}
