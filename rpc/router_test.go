package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
)

func TestRouterDispatch(t *testing.T) {
	r := rpc.NewRouter()
	var got []string
	rpc.Handle(r, "ledger", "transfer", func(ctx context.Context, req greetReq) (*greetResp, error) {
		got = append(got, "ledger/transfer "+req.Name)
		return &greetResp{Greeting: "moved"}, nil
	})
	rpc.Handle(r, "ledger", "hold", func(ctx context.Context, req greetReq) (*greetResp, error) {
		got = append(got, "ledger/hold "+req.Name)
		return &greetResp{Greeting: "held"}, nil
	})
	rpc.Handle(r, "card", "transfer", func(ctx context.Context, req greetReq) (*greetResp, error) {
		got = append(got, "card/transfer "+req.Name)
		return &greetResp{Greeting: "carded"}, nil
	})
	s := r.Service()

	for _, c := range []struct {
		service, method string
		body            any
		want            string
	}{
		{"ledger", "hold", greetReq{Name: "value"}, "held"},
		{"ledger", "transfer", &greetReq{Name: "pointer"}, "moved"},
		{"card", "transfer", json.RawMessage(`{"name":"json"}`), "carded"},
	} {
		rsp := s(context.Background(), rpc.Request{Service: c.service, Method: c.method, Body: c.body})
		if rsp.Err != nil {
			t.Fatalf("%s/%s: %v", c.service, c.method, rsp.Err)
		}
		if b, ok := rsp.Body.(*greetResp); !ok || b.Greeting != c.want {
			t.Errorf("%s/%s: body %#v, want *greetResp %q", c.service, c.method, rsp.Body, c.want)
		}
	}
	want := []string{"ledger/hold value", "ledger/transfer pointer", "card/transfer json"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("handlers called %q, want %q", got, want)
	}
	methods := r.Methods()
	wantMethods := []string{"service.card/transfer", "service.ledger/hold", "service.ledger/transfer"}
	if !reflect.DeepEqual(methods, wantMethods) {
		t.Errorf("Methods() = %q, want %q", methods, wantMethods)
	}
}

func TestRouterUnknownMethod(t *testing.T) {
	s := newTestRouter().Service()
	for _, c := range []struct{ service, method string }{
		{"test", "nope"},
		{"nope", "greet"},
		{"", ""},
	} {
		rsp := s(context.Background(), rpc.Request{Service: c.service, Method: c.method})
		assertErr(t, rsp.Err, errors.NotFound, fmt.Sprintf("unknown method %s/%s", c.service, c.method))
	}
}

func TestRouterRejectsBadJSON(t *testing.T) {
	s := newTestRouter().Service()
	for _, c := range []struct {
		name, body, want string
	}{
		{"syntax error", `{"name": "Ada",}`, `test/greet: request body: malformed JSON at byte 16: invalid character '}' looking for beginning of object key string`},
		{"truncated", `{"name": "Ada"`, `test/greet: request body: truncated JSON`},
		{"empty", ``, `test/greet: request body: empty, want a JSON value`},
		{"unknown field", `{"name": "Ada", "nmae": "x"}`, `test/greet: request body: unknown field "nmae"`},
		{"wrong type", `{"name": "Ada", "times": "two"}`, `test/greet: request body: field "times": cannot use a JSON string as int`},
		{"a number too large, not echoed", `{"name": "Ada", "times": 45999935237786401234567}`, `test/greet: request body: field "times": cannot use a JSON number as int`},
		{"a fraction, not echoed", `{"name": "Ada", "times": 4599993523778640.5}`, `test/greet: request body: field "times": cannot use a JSON number as int`},
		{"wrong top-level type", `[1,2]`, `test/greet: request body: cannot use a JSON array as rpc_test.greetReq`},
		{"trailing data", `{"name": "Ada"} {"name": "Bo"}`, `test/greet: request body: unexpected data after the JSON value, at byte 15`},
		{"trailing garbage", `{"name": "Ada"}}`, `test/greet: request body: unexpected data after the JSON value, at byte 15`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rsp := s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: json.RawMessage(c.body)})
			assertErr(t, rsp.Err, errors.BadRequest, c.want)
		})
	}
	t.Run("whitespace around the value is fine", func(t *testing.T) {
		rsp := s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: json.RawMessage(" {\"name\":\"Ada\",\"times\":1}\n")})
		if rsp.Err != nil {
			t.Fatal(rsp.Err)
		}
		if got := rsp.Body.(*greetResp).Greeting; got != "hello Ada" {
			t.Errorf("greeting %q", got)
		}
	})
}

func TestRouterRejectsWrongBodyType(t *testing.T) {
	s := newTestRouter().Service()
	rsp := s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: 42})
	assertErr(t, rsp.Err, errors.BadRequest, "test/greet: request body is int, want rpc_test.greetReq")
	rsp = s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: &failReq{}})
	assertErr(t, rsp.Err, errors.BadRequest, "test/greet: request body is *rpc_test.failReq, want rpc_test.greetReq")
}

func TestRouterKeepsCauseInProcess(t *testing.T) {
	// In process, an error outside the vocabulary becomes Internal but
	// keeps the original as its cause, for the caller's log. (Over HTTP
	// the cause stays on the server: see TestHTTPErrorCauseStaysOnServer.)
	_, err := rpc.Call[greetResp](context.Background(), newTestRouter().Service(), "test", "plain", struct{}{})
	assertErr(t, err, errors.Internal, "internal error")
	if !strings.Contains(err.Error(), "db: connection reset by peer") {
		t.Errorf("in-process error %q lost its cause", err)
	}
}

func TestRouterTypedNilErrorIsSuccess(t *testing.T) {
	r := rpc.NewRouter()
	rpc.Handle(r, "t", "m", func(ctx context.Context, req struct{}) (*greetResp, error) {
		var e *errors.Error // a nil *errors.Error returned as an error is non-nil
		return &greetResp{Greeting: "ok"}, e
	})
	got, err := rpc.Call[greetResp](context.Background(), r.Service(), "t", "m", struct{}{})
	if err != nil || got == nil || got.Greeting != "ok" {
		t.Errorf("Call = %v, %v; want ok, nil", got, err)
	}
}

func TestHandlePanicsOnWiringMistakes(t *testing.T) {
	ok := func(ctx context.Context, req struct{}) (*struct{}, error) { return nil, nil }
	for name, register := range map[string]func(r *rpc.Router){
		"duplicate":       func(r *rpc.Router) { rpc.Handle(r, "a", "b", ok); rpc.Handle(r, "a", "b", ok) },
		"empty service":   func(r *rpc.Router) { rpc.Handle(r, "", "b", ok) },
		"empty method":    func(r *rpc.Router) { rpc.Handle(r, "a", "", ok) },
		"slash in method": func(r *rpc.Router) { rpc.Handle(r, "a", "b/c", ok) },
		"nil handler": func(r *rpc.Router) {
			rpc.Handle[struct{}, struct{}](r, "a", "b", nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Handle did not panic")
				}
			}()
			register(rpc.NewRouter())
		})
	}
}

func TestCallRejectsWrongResultType(t *testing.T) {
	s := rpc.Service(func(ctx context.Context, req rpc.Request) rpc.Response {
		return rpc.Response{Body: 42}
	})
	_, err := rpc.Call[greetResp](context.Background(), s, "t", "m", nil)
	assertErr(t, err, errors.Internal, "t/m: response body is int, want *rpc_test.greetResp")

	s = func(ctx context.Context, req rpc.Request) rpc.Response {
		return rpc.Response{Body: json.RawMessage(`{"greeting": 7}`)}
	}
	_, err = rpc.Call[greetResp](context.Background(), s, "t", "m", nil)
	assertErr(t, err, errors.Internal, "t/m: malformed response body")
}

func TestCallAcceptsResultValue(t *testing.T) {
	// A hand-written fake may return its result by value.
	s := rpc.Service(func(ctx context.Context, req rpc.Request) rpc.Response {
		return rpc.Response{Body: greetResp{Greeting: "hi"}}
	})
	got, err := rpc.Call[greetResp](context.Background(), s, "t", "m", nil)
	if err != nil || got.Greeting != "hi" {
		t.Errorf("Call = %+v, %v", got, err)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mark := func(name string) rpc.Filter {
		return func(ctx context.Context, req rpc.Request, next rpc.Service) rpc.Response {
			order = append(order, name+" in")
			rsp := next(ctx, req)
			order = append(order, name+" out")
			return rsp
		}
	}
	s := rpc.Service(func(ctx context.Context, req rpc.Request) rpc.Response {
		order = append(order, "service")
		return rpc.Response{}
	})
	rpc.Chain(s, mark("a"), mark("b")).Filter(mark("outer"))(context.Background(), rpc.Request{})
	want := []string{"outer in", "a in", "b in", "service", "b out", "a out", "outer out"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
}

func TestFromNamesTheCaller(t *testing.T) {
	// A handler calling onwards with its own context would name its
	// caller; From names the service itself.
	ctx := rpc.WithCaller(context.Background(), "cardnet")
	s := rpc.Chain(newTestRouter().Service(), rpc.From("authorization"))
	got, err := rpc.Call[greetResp](ctx, s, "test", "greet", greetReq{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Caller != "authorization" {
		t.Errorf("handler saw caller %q, want authorization", got.Caller)
	}
}

// A route named by a client that is not plain (a card number, say) is not
// echoed in errors, logs, metrics or spans.
func TestUnknownRouteIsNotEchoed(t *testing.T) {
	s := newTestRouter().Service()
	const pan = "4599993523778640"
	for _, c := range []struct{ service, method string }{
		{"card", pan},
		{pan, "get"},
		{"card", "get\n" + strings.Repeat("x", 10)},
		{"card", strings.Repeat("x", 200)},
	} {
		rsp := s(context.Background(), rpc.Request{Service: c.service, Method: c.method})
		if errors.CodeOf(rsp.Err) != errors.NotFound || strings.Contains(rsp.Err.Error(), pan) || strings.Contains(rsp.Err.Error(), "xxxxxxxxxx") {
			t.Errorf("%q/%q: %v", c.service, c.method, rsp.Err)
		}
	}
}
