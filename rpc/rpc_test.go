package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
)

// greetReq and greetResp are a test service's request and result.
type greetReq struct {
	Name  string `json:"name"`
	Times int    `json:"times"`
}

type greetResp struct {
	Greeting string `json:"greeting"`
	Caller   string `json:"caller"`
}

// failReq asks the test service to fail with a code and message.
type failReq struct {
	Code    errors.Code `json:"code"`
	Message string      `json:"message"`
}

// deadlineResp reports what deadline a handler saw.
type deadlineResp struct {
	HasDeadline bool      `json:"has_deadline"`
	Deadline    time.Time `json:"deadline"`
}

// newTestRouter returns a router serving the "test" service:
//
//	greet     greets req.Name and says who called
//	fail      fails with the requested code and message
//	plain     fails with an error outside the vocabulary
//	wrapped   fails with a vocabulary error wrapped in fmt.Errorf
//	wait      waits for its context to end and returns its error
//	deadline  reports its context's deadline
//	nothing   succeeds with a nil result
func newTestRouter() *rpc.Router {
	r := rpc.NewRouter()
	rpc.Handle(r, "test", "greet", func(ctx context.Context, req greetReq) (*greetResp, error) {
		g := "hello"
		for range req.Times - 1 {
			g += " hello"
		}
		return &greetResp{Greeting: g + " " + req.Name, Caller: rpc.CallerFrom(ctx)}, nil
	})
	rpc.Handle(r, "test", "fail", func(ctx context.Context, req failReq) (*greetResp, error) {
		return nil, errors.New(req.Code, req.Message)
	})
	rpc.Handle(r, "test", "plain", func(ctx context.Context, req struct{}) (*greetResp, error) {
		return nil, fmt.Errorf("db: connection reset by peer")
	})
	rpc.Handle(r, "test", "wrapped", func(ctx context.Context, req struct{}) (*greetResp, error) {
		return nil, fmt.Errorf("post hold h1: %w", errors.New(errors.InsufficientFunds, "available funds 300 below 350"))
	})
	rpc.Handle(r, "test", "wait", func(ctx context.Context, req struct{}) (*greetResp, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	rpc.Handle(r, "test", "deadline", func(ctx context.Context, req struct{}) (*deadlineResp, error) {
		dl, ok := ctx.Deadline()
		return &deadlineResp{HasDeadline: ok, Deadline: dl}, nil
	})
	rpc.Handle(r, "test", "nothing", func(ctx context.Context, req struct{}) (*greetResp, error) {
		return nil, nil
	})
	return r
}

// transport is a way to reach a Service.
type transport struct {
	name string
	s    rpc.Service
}

// transports returns s reachable in process and over HTTP through an
// httptest server that the test closes.
func transports(t testing.TB, s rpc.Service, opts ...rpc.HandlerOption) []transport {
	t.Helper()
	srv := httptest.NewServer(rpc.NewHTTPHandler(s, opts...))
	t.Cleanup(srv.Close)
	return []transport{
		{"in-process", s},
		{"http", rpc.NewHTTPClient(srv.URL, srv.Client())},
	}
}

// assertCode fails t unless err has code want (and, if msg is not empty,
// that message).
func assertErr(t *testing.T, err error, want errors.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %s", want)
	}
	var e *errors.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want an *errors.Error", err, err)
	}
	if e.Code != want {
		t.Errorf("code = %s (%v), want %s", e.Code, err, want)
	}
	if msg != "" && e.Message != msg {
		t.Errorf("message = %q, want %q", e.Message, msg)
	}
}

// A key twice in one object, in any case (encoding/json matches fields
// without regard to case and lets the last win), is refused: a proxy that
// checked one and a service that used the other would disagree.
func TestDuplicateKeyIsRefused(t *testing.T) {
	s := newTestRouter().Service()
	for _, body := range []string{
		`{"name":"ada","name":"mallory"}`,
		`{"name":"ada","NAME":"mallory"}`,
		`{"NAME":"ada","nAmE":"mallory"}`,
		"{\"times\":1,\"name\":\"ada\",\"time\u017f\":2}", // U+017F long s folds to s
		`{"times":1,"name":"ada","Times":2}`,
	} {
		rsp := s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: json.RawMessage(body)})
		if errors.CodeOf(rsp.Err) != errors.BadRequest || !strings.Contains(rsp.Err.Error(), "appears twice") {
			t.Errorf("%s: %+v, %v; want bad_request naming the duplicate", body, rsp.Body, rsp.Err)
		}
	}
	// The same key in different objects, and keys that are values, are fine.
	for _, body := range []string{
		`{"name":"name","times":1}`,
		`{"name":"ada"}`,
		`{"times":2,"name":"times"}`,
	} {
		rsp := s(context.Background(), rpc.Request{Service: "test", Method: "greet", Body: json.RawMessage(body)})
		if rsp.Err != nil {
			t.Errorf("%s: %v", body, rsp.Err)
		}
	}
}

// Keys are compared as they decode: without regard to case into a
// struct's fields, at any depth; exactly into a map, whose keys decode
// exactly (so "Ref" and "ref" are two metadata keys, as in process).
func TestDuplicateKeyFollowsTheType(t *testing.T) {
	type item struct {
		ID string `json:"id"`
	}
	type metaReq struct {
		Name  string            `json:"name"`
		Meta  map[string]string `json:"meta"`
		Items []item            `json:"items"`
		Any   any               `json:"any"`
	}
	r := rpc.NewRouter()
	rpc.Handle(r, "test", "meta", func(ctx context.Context, req metaReq) (*metaReq, error) { return &req, nil })
	s := r.Service()
	for body, dup := range map[string]bool{
		`{"meta":{"Ref":"a","ref":"b"}}`:               false,
		`{"meta":{"ref":"a","ref":"b"}}`:               true,
		`{"items":[{"id":"a"},{"id":"b"}]}`:            false,
		`{"items":[{"id":"a","ID":"b"}]}`:              true,
		`{"name":"x","meta":{},"Meta":{}}`:             true,
		`{"any":{"k":1,"K":2}}`:                        false,
		`{"any":{"k":1,"k":2}}`:                        true,
		`{"meta":{"a":"{\"b\":1,\"b\":2}"},"name":""}`: false,
	} {
		rsp := s(context.Background(), rpc.Request{Service: "test", Method: "meta", Body: json.RawMessage(body)})
		if got := errors.CodeOf(rsp.Err) == errors.BadRequest && strings.Contains(rsp.Err.Error(), "appears twice"); got != dup {
			t.Errorf("%s: %v, want a duplicate refused: %v", body, rsp.Err, dup)
		}
	}
}
