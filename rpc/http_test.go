package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
)

// post sends body to the handler's path and returns the status and the
// decoded error body (zero on success).
func post(t *testing.T, url, body string, header http.Header) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e map[string]string
	if res.StatusCode != http.StatusOK {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error content type %q, want application/json", ct)
		}
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
			t.Fatalf("error body is not JSON: %v", err)
		}
	}
	return res.StatusCode, e
}

func TestHTTPHandlerWire(t *testing.T) {
	srv := httptest.NewServer(rpc.NewHTTPHandler(newTestRouter().Service()))
	defer srv.Close()

	t.Run("error is code and message with its status", func(t *testing.T) {
		status, e := post(t, srv.URL+"/rpc/test/fail", `{"code":"insufficient_funds","message":"short by 50"}`, nil)
		if status != http.StatusUnprocessableEntity || e["code"] != "insufficient_funds" || e["message"] != "short by 50" {
			t.Errorf("got %d %v", status, e)
		}
	})
	t.Run("bad JSON", func(t *testing.T) {
		status, e := post(t, srv.URL+"/rpc/test/greet", `{"name":`, nil)
		if status != http.StatusBadRequest || e["code"] != "bad_request" || e["message"] != "test/greet: request body: truncated JSON" {
			t.Errorf("got %d %v", status, e)
		}
	})
	t.Run("body not UTF-8", func(t *testing.T) {
		// A client not in Go may send the bytes raw; decoded, they would
		// become U+FFFD: another string than the one sent.
		status, e := post(t, srv.URL+"/rpc/test/greet", "{\"name\":\"caf\xe9\"}", nil)
		if status != http.StatusBadRequest || e["code"] != "bad_request" || e["message"] != "test/greet: request body is not UTF-8" {
			t.Errorf("got %d %v", status, e)
		}
	})
	t.Run("escaped lone surrogate", func(t *testing.T) {
		// "\ud800" and "\udbff" would both decode to U+FFFD: one string.
		status, e := post(t, srv.URL+"/rpc/test/greet", `{"name":"pay-\ud800"}`, nil)
		if status != http.StatusBadRequest || e["code"] != "bad_request" || e["message"] != "test/greet: request body is not UTF-8" {
			t.Errorf("got %d %v", status, e)
		}
		status, e = post(t, srv.URL+"/rpc/test/greet", `{"name":"pay-\ud83d\ude00"}`, nil)
		if status != http.StatusOK {
			t.Errorf("a surrogate pair: got %d %v", status, e)
		}
	})
	t.Run("bad deadline header", func(t *testing.T) {
		status, e := post(t, srv.URL+"/rpc/test/greet", `{}`, http.Header{rpc.HeaderDeadline: {"soon"}})
		if status != http.StatusBadRequest || !strings.Contains(e["message"], rpc.HeaderDeadline) {
			t.Errorf("got %d %v", status, e)
		}
	})
	t.Run("expired deadline header", func(t *testing.T) {
		status, e := post(t, srv.URL+"/rpc/test/wait", `{}`, http.Header{rpc.HeaderDeadline: {"0"}})
		if status != http.StatusGatewayTimeout || e["code"] != "timeout" {
			t.Errorf("got %d %v", status, e)
		}
	})
	t.Run("only POST", func(t *testing.T) {
		res, err := http.Get(srv.URL + "/rpc/test/greet")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET status %d, want 405", res.StatusCode)
		}
	})
}

func TestHTTPBodySizeLimit(t *testing.T) {
	trs := transports(t, newTestRouter().Service())
	httpc := trs[1].s
	// The JSON is {"name":"xxx…","times":1}: 23 bytes around the name.
	const overhead = len(`{"name":"","times":1}`)

	got, err := rpc.Call[greetResp](context.Background(), httpc, "test", "greet",
		greetReq{Name: strings.Repeat("x", rpc.MaxRequestBytes-overhead), Times: 1})
	if err != nil {
		t.Fatalf("request of exactly MaxRequestBytes: %v", err)
	}
	if len(got.Greeting) != len("hello ")+rpc.MaxRequestBytes-overhead {
		t.Errorf("greeting of %d bytes", len(got.Greeting))
	}

	_, err = rpc.Call[greetResp](context.Background(), httpc, "test", "greet",
		greetReq{Name: strings.Repeat("x", rpc.MaxRequestBytes-overhead+1), Times: 1})
	assertErr(t, err, errors.BadRequest, "test/greet: request body exceeds 1048576 bytes")
}

func TestHTTPMaxRequestOption(t *testing.T) {
	srv := httptest.NewServer(rpc.NewHTTPHandler(newTestRouter().Service(), rpc.MaxRequest(4<<20)))
	t.Cleanup(srv.Close)
	c := rpc.NewHTTPClient(srv.URL, srv.Client())
	const overhead = len(`{"name":"","times":1}`)
	if _, err := rpc.Call[greetResp](context.Background(), c, "test", "greet",
		greetReq{Name: strings.Repeat("x", 3<<20), Times: 1}); err != nil {
		t.Fatalf("3 MiB request under a 4 MiB bound: %v", err)
	}
	_, err := rpc.Call[greetResp](context.Background(), c, "test", "greet",
		greetReq{Name: strings.Repeat("x", 4<<20-overhead+1), Times: 1})
	assertErr(t, err, errors.BadRequest, "test/greet: request body exceeds 4194304 bytes")
}

func TestHTTPErrorCauseStaysOnServer(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(rpc.NewHTTPHandler(newTestRouter().Service(), rpc.ErrorLog(log)))
	defer srv.Close()

	res, err := http.Post(srv.URL+"/rpc/test/plain", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), "connection reset") {
		t.Errorf("cause crossed the wire: %s", body)
	}
	if got := string(body); got != `{"code":"internal","message":"internal error"}` {
		t.Errorf("body %s", got)
	}
	if l := logBuf.String(); !strings.Contains(l, "db: connection reset by peer") || !strings.Contains(l, "level=ERROR") {
		t.Errorf("cause not logged at error level: %q", l)
	}
}

func TestHTTPClientMapsForeignFailures(t *testing.T) {
	for _, c := range []struct {
		status int
		want   errors.Code
	}{
		{http.StatusBadGateway, errors.Unavailable},
		{http.StatusServiceUnavailable, errors.Unavailable},
		{http.StatusTooManyRequests, errors.Unavailable},
		{http.StatusGatewayTimeout, errors.Timeout},
		{http.StatusNotFound, errors.NotFound},
		{http.StatusInternalServerError, errors.Internal},
		{http.StatusTeapot, errors.Internal},
	} {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(c.status)
				io.WriteString(w, "<html>upstream trouble</html>")
			}))
			defer proxy.Close()
			_, err := rpc.Call[greetResp](context.Background(), rpc.NewHTTPClient(proxy.URL, proxy.Client()), "test", "greet", greetReq{})
			assertErr(t, err, c.want, "")
		})
	}
}

func TestHTTPClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := rpc.Call[greetResp](context.Background(), rpc.NewHTTPClient(url, nil), "test", "greet", greetReq{})
	assertErr(t, err, errors.Unavailable, "test/greet: service unavailable")
}

func TestHTTPClientDeadline(t *testing.T) {
	var hits atomic.Int32
	// A server that ignores the deadline it is sent and never answers:
	// the client must give up by itself.
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stuck.Close()
	defer close(release)
	c := rpc.NewHTTPClient(stuck.URL, stuck.Client())

	t.Run("deadline passes while waiting", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := rpc.Call[greetResp](ctx, c, "test", "greet", greetReq{})
		assertErr(t, err, errors.Timeout, "deadline exceeded")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("gave up after %v", d)
		}
	})
	t.Run("deadline already passed: nothing sent", func(t *testing.T) {
		before := hits.Load()
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := rpc.Call[greetResp](ctx, c, "test", "greet", greetReq{})
		assertErr(t, err, errors.Timeout, "deadline exceeded")
		if hits.Load() != before {
			t.Error("a request was sent after its deadline")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := rpc.Call[greetResp](ctx, c, "test", "greet", greetReq{})
		assertErr(t, err, errors.Timeout, "canceled")
	})
}

func TestHTTPClientPathAndHeaders(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		io.WriteString(w, `{"greeting":"hi"}`)
	}))
	defer srv.Close()
	ctx := rpc.WithCaller(context.Background(), "authorization")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// A trailing slash on the base URL is fine.
	if _, err := rpc.Call[greetResp](ctx, rpc.NewHTTPClient(srv.URL+"/", nil), "ledger", "transfer", greetReq{}); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/rpc/ledger/transfer" {
		t.Errorf("sent %s %s", got.Method, got.URL.Path)
	}
	if h := got.Header.Get(rpc.HeaderCaller); h != "authorization" {
		t.Errorf("%s: %q", rpc.HeaderCaller, h)
	}
	if h := got.Header.Get(rpc.HeaderDeadline); h < "59000" || h > "60000" || len(h) != 5 {
		t.Errorf("%s: %q, want just under 60000", rpc.HeaderDeadline, h)
	}
	if h := got.Header.Get("Content-Type"); h != "application/json" {
		t.Errorf("Content-Type: %q", h)
	}
}

// A deadline header in the past is refused as a timeout whatever its size:
// a large negative count must not wrap into a deadline centuries ahead.
func TestHTTPNegativeDeadlineIsATimeout(t *testing.T) {
	s := rpc.Chain(newTestRouter().Service(), rpc.Deadline(5*time.Second))
	srv := httptest.NewServer(rpc.NewHTTPHandler(s))
	defer srv.Close()
	for _, v := range []string{"0", "-1", "-9223372036854", "-9223372036855", "-9000000000000000000"} {
		req, err := http.NewRequest("POST", srv.URL+"/rpc/test/deadline", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(rpc.HeaderDeadline, v)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("%s: %s: HTTP %d %s; want 504 timeout", rpc.HeaderDeadline, v, res.StatusCode, b)
		}
	}
}

// A caller's name is recorded (audit rows, events, logs): one that is not
// a plain short name is refused, on every transport, before the handler.
func TestCallerNameIsChecked(t *testing.T) {
	r := newTestRouter()
	srv := httptest.NewServer(rpc.NewHTTPHandler(r.Service()))
	defer srv.Close()
	bad := []string{"api\xff", "a\nb", "a b", strings.Repeat("x", rpc.MaxCallerLen+1)}
	for _, caller := range bad {
		req, err := http.NewRequest("POST", srv.URL+"/rpc/test/greet", strings.NewReader(`{"name":"ada"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header[rpc.HeaderCaller] = []string{caller} // as sent, unchecked
		if res, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "hello") {
				t.Errorf("HTTP caller %q: %d %s, want 400 bad_request", caller, res.StatusCode, b)
			}
		} // else net/http itself refused to send it
		for name, s := range map[string]rpc.Service{"in process": r.Service(), "HTTP client": rpc.NewHTTPClient(srv.URL, nil)} {
			_, err := rpc.Call[greetResp](context.Background(), s.Filter(rpc.From(caller)), "test", "greet", greetReq{Name: "ada"})
			if errors.CodeOf(err) != errors.BadRequest {
				t.Errorf("%s, caller %q: %v, want bad_request", name, caller, err)
			}
		}
	}
	for _, caller := range []string{"", "authorization", "card-api.v2:eu-west-1_a", strings.Repeat("x", rpc.MaxCallerLen)} {
		got, err := rpc.Call[greetResp](context.Background(), rpc.NewHTTPClient(srv.URL, nil).Filter(rpc.From(caller)), "test", "greet", greetReq{Name: "ada"})
		if err != nil || got.Caller != caller {
			t.Errorf("caller %q: %+v, %v", caller, got, err)
		}
	}
}

// The HTTP client keeps connections for reuse: a service called by many
// goroutines at once does not dial a connection for most calls (Go's
// default transport keeps two idle ones per host).
func TestHTTPClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // a decision takes a moment
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	svc := rpc.NewHTTPClient(srv.URL, nil)
	const workers, calls = 64, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				res := svc(context.Background(), rpc.Request{Service: "test", Method: "get", Body: map[string]string{"id": "x"}})
				if res.Err != nil {
					t.Error(res.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n > 2*workers {
		t.Errorf("%d calls from %d goroutines opened %d connections; want them reused", workers*calls, workers, n)
	}
}

// A body the service cannot decode gets an answer, and leaves a log line,
// that quote no card-number-like value the caller sent: not a number too
// large for its field, not a time that does not parse, not a key.
func TestJSONErrorsDoNotEchoValues(t *testing.T) {
	type req struct {
		Times int       `json:"times"`
		AsOf  time.Time `json:"as_of"`
	}
	r := rpc.NewRouter()
	rpc.Handle(r, "test", "t", func(ctx context.Context, q req) (*req, error) { return &q, nil })
	var logs bytes.Buffer
	srv := httptest.NewServer(rpc.NewHTTPHandler(r.Service(), rpc.ErrorLog(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))))
	defer srv.Close()
	const pan = "4599993523778640"
	for _, body := range []string{
		`{"times":` + pan + `.5}`,
		`{"times":` + pan + `0000}`,
		`{"as_of":"` + pan + `"}`,
		`{"` + pan + `":1}`,
		`{"times":1,"Times":2,"as_of":"2026-01-01T00:00:00Z"}`,
	} {
		logs.Reset()
		resp, err := http.Post(srv.URL+"/rpc/test/t", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), pan) {
			t.Errorf("%s: answered %d %s", body, resp.StatusCode, b)
		}
		if strings.Contains(logs.String(), pan) {
			t.Errorf("%s: logged %s", body, logs.String())
		}
	}
}

// The transport's own refusals (a body too large, not UTF-8) do not echo a
// route nothing serves either.
func TestHTTPDoesNotEchoAnUnknownRoute(t *testing.T) {
	const pan = "4599993523778640"
	srv := httptest.NewServer(rpc.NewHTTPHandler(rpc.NewRouter().Service(), rpc.MaxRequest(16)))
	defer srv.Close()
	for name, body := range map[string]string{
		"not utf-8": "\xff\xfe",
		"too large": `{"a":"` + strings.Repeat("x", 64) + `"}`,
		"plain":     `{}`,
	} {
		resp, err := http.Post(srv.URL+"/rpc/card/"+pan, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || strings.Contains(string(b), pan) {
			t.Errorf("%s: answered %d %s", name, resp.StatusCode, b)
		}
	}
}

// A connection lost after the request was sent may have lost only the
// answer: the call may have taken effect, so it is a Timeout (retry with
// the same key), not Unavailable (nothing done).
func TestHTTPClientConnectionLostAfterSending(t *testing.T) {
	var served atomic.Int32
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		served.Add(1) // the call's effect would be here
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close() // and its answer lost
	}))
	defer drop.Close()
	_, err := rpc.Call[greetResp](context.Background(), rpc.NewHTTPClient(drop.URL, drop.Client()), "test", "greet", greetReq{})
	assertErr(t, err, errors.Timeout, "test/greet: the connection was lost after the request was sent; it may have taken effect")
	if served.Load() != 1 {
		t.Errorf("served %d times, want once (a POST is never resent)", served.Load())
	}
}
