package rpc_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
)

// TestTransportsAreIndistinguishable runs one table of calls against the
// in-process Service and the same Service over HTTP, with the same
// assertions: a caller cannot tell the transports apart.
func TestTransportsAreIndistinguishable(t *testing.T) {
	type result struct {
		resp *greetResp
		code errors.Code
		msg  string
	}
	call := func(ctx context.Context, s rpc.Service, method string, req any) result {
		resp, err := rpc.Call[greetResp](ctx, s, "test", method, req)
		if err == nil {
			return result{resp: resp}
		}
		var e *errors.Error
		if !errors.As(err, &e) {
			return result{code: "not an *errors.Error", msg: err.Error()}
		}
		if resp != nil {
			return result{code: "result and error both set"}
		}
		return result{code: e.Code, msg: e.Message}
	}

	type tcase struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		method string
		req    any
		want   result
	}
	background := func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
	cases := []tcase{
		{"success by value", background, "greet", greetReq{Name: "Ada", Times: 2},
			result{resp: &greetResp{Greeting: "hello hello Ada"}}},
		{"success by pointer", background, "greet", &greetReq{Name: "Ada", Times: 1},
			result{resp: &greetResp{Greeting: "hello Ada"}}},
		{"nil request is the zero request", background, "greet", nil,
			result{resp: &greetResp{Greeting: "hello "}}},
		{"nil result", background, "nothing", struct{}{}, result{}},
		{"caller propagates", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(rpc.WithCaller(context.Background(), "authorization"))
		}, "greet", greetReq{Name: "Bo", Times: 1},
			result{resp: &greetResp{Greeting: "hello Bo", Caller: "authorization"}}},
		{"error outside the vocabulary is internal", background, "plain", struct{}{},
			result{code: errors.Internal, msg: "internal error"}},
		{"wrapped vocabulary error keeps code and message", background, "wrapped", struct{}{},
			result{code: errors.InsufficientFunds, msg: "available funds 300 below 350"}},
		{"unknown method", background, "nope", struct{}{},
			result{code: errors.NotFound, msg: "unknown method test/nope"}},
		{"deadline passes in the handler", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, "wait", struct{}{}, result{code: errors.Timeout, msg: "deadline exceeded"}},
	}
	for _, code := range []errors.Code{
		errors.BadRequest, errors.NotFound, errors.Conflict, errors.InsufficientFunds,
		errors.CurrencyMismatch, errors.AccountClosed, errors.Unauthenticated,
		errors.Forbidden, errors.Timeout, errors.Unavailable, errors.Internal,
	} {
		msg := "the " + string(code) + " case"
		cases = append(cases, tcase{"error " + string(code), background, "fail",
			failReq{Code: code, Message: msg}, result{code: code, msg: msg}})
	}

	for _, tr := range transports(t, newTestRouter().Service()) {
		t.Run(tr.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := tc.ctx()
					defer cancel()
					got := call(ctx, tr.s, tc.method, tc.req)
					if !reflect.DeepEqual(got, tc.want) {
						t.Errorf("got %+v (resp %+v), want %+v (resp %+v)", got, got.resp, tc.want, tc.want.resp)
					}
				})
			}
		})
	}
}

func TestDeadlinePropagatesOverHTTP(t *testing.T) {
	trs := transports(t, newTestRouter().Service())
	httpc := trs[1].s

	t.Run("server deadline is no later than the client's", func(t *testing.T) {
		// A first call opens the connection, so the measured one is not
		// slowed by a dial: the deadline leaves room for a trip, not a dial.
		if _, err := rpc.Call[deadlineResp](context.Background(), httpc, "test", "deadline", struct{}{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		clientDL, _ := ctx.Deadline()
		got, err := rpc.Call[deadlineResp](ctx, httpc, "test", "deadline", struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		if !got.HasDeadline {
			t.Fatal("server saw no deadline")
		}
		if got.Deadline.After(clientDL) {
			t.Errorf("server deadline %v is after the client's %v", got.Deadline, clientDL)
		}
		if left := time.Until(got.Deadline); left < time.Second {
			t.Errorf("server deadline only %v away; the client gave 2s", left)
		}
	})

	t.Run("no deadline when the client has none", func(t *testing.T) {
		got, err := rpc.Call[deadlineResp](context.Background(), httpc, "test", "deadline", struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		if got.HasDeadline {
			t.Errorf("server saw deadline %v the client never set", got.Deadline)
		}
	})
}

func TestHTTPServerNeverExtendsItsOwnDeadline(t *testing.T) {
	// The server gives every request at most 100ms (in its http.Handler
	// stack, below the rpc handler); a client offering 10s must not
	// lengthen that.
	h := rpc.NewHTTPHandler(newTestRouter().Service())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := rpc.Call[deadlineResp](ctx, rpc.NewHTTPClient(srv.URL, srv.Client()), "test", "deadline", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(got.Deadline); left > 100*time.Millisecond {
		t.Errorf("server deadline %v away, want at most its own 100ms", left)
	}
}
