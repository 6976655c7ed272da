package rpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/corebank/corebank/errors"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The HTTP transport's wire protocol. A request is
//
//	POST /rpc/{service}/{method}
//	Content-Type: application/json
//	Corebank-Deadline-Ms: 250        (optional: the caller's remaining time)
//	Corebank-Caller: authorization   (optional: the calling service)
//	traceparent: 00-...               (optional: W3C trace context)
//
//	{the request as JSON}
//
// A success is 200 with the result as JSON. A failure has the status
// errors.HTTPStatus gives its code, and the body {"code":..,"message":..}.
const (
	// HeaderDeadline carries the caller's remaining time, in whole
	// milliseconds, less an allowance for the round trip (a tenth of it, at
	// most 5ms). The server never works past it, so it gives up before the
	// caller does and its Timeout answer arrives in time.
	HeaderDeadline = "Corebank-Deadline-Ms"
	// HeaderCaller names the calling service. On its own it is the
	// caller's claim, not proof: behind CallerFromCertificate it must
	// agree with the client's certificate, which is.
	HeaderCaller = "Corebank-Caller"

	// MaxRequestBytes bounds a request body by default (MaxRequest); a
	// larger one is BadRequest.
	MaxRequestBytes = 1 << 20
	// maxResponseBytes bounds a response body the client reads.
	maxResponseBytes = 16 << 20
	// maxTripAllowance bounds the time the client reserves for the trip
	// to the server and back out of its remaining time.
	maxTripAllowance = 5 * time.Millisecond
)

// errorBody is a failure on the wire: the code and message of an
// *errors.Error, never its cause.
type errorBody struct {
	Code    errors.Code `json:"code"`
	Message string      `json:"message"`
}

// HandlerOption configures NewHTTPHandler.
type HandlerOption func(*httpHandler)

// ErrorLog has the handler log, to log, the causes of the errors it sends:
// a cause never crosses the wire, so this is the last place it can be seen.
// Internal errors are logged at level Error, others with a cause at Debug.
// Without it, causes are dropped unlogged.
func ErrorLog(log *slog.Logger) HandlerOption {
	return func(h *httpHandler) { h.log = log }
}

// MaxRequest bounds the handler's request bodies at n bytes instead of
// MaxRequestBytes: for a route whose requests carry files.
func MaxRequest(n int64) HandlerOption {
	return func(h *httpHandler) { h.max = n }
}

// CallerFromCertificate has the handler take the caller's name from the
// client certificate the TLS handshake verified (its subject's Common
// Name), not from the Corebank-Caller header: mutual TLS makes the name
// proof, and a Policy filter behind the handler then decides on who is
// really calling. A request without a verified certificate is
// Unauthenticated; one whose header names another caller than its
// certificate, Forbidden. Serve the handler with a tls.Config whose
// ClientAuth verifies the certificates it is given (VerifyClientCertIfGiven
// keeps /metrics and health checks reachable without one).
func CallerFromCertificate() HandlerOption {
	return func(h *httpHandler) { h.certCaller = true }
}

// NewHTTPHandler returns the server side of the HTTP transport: it serves
// POST /rpc/{service}/{method} by calling s. The request's context carries
// the caller's deadline (never later than the server's own), its name
// (CallerFrom), and its trace context, so a Trace filter in s continues the
// caller's trace. Request bodies over MaxRequestBytes (or MaxRequest) are
// BadRequest.
func NewHTTPHandler(s Service, opts ...HandlerOption) http.Handler {
	h := &httpHandler{s: s, max: MaxRequestBytes}
	for _, o := range opts {
		o(h)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rpc/{service}/{method}", h.serve)
	return mux
}

type httpHandler struct {
	s          Service
	log        *slog.Logger // nil: do not log
	max        int64        // request body bound
	certCaller bool         // the caller is the client certificate's
}

// VerifiedClient reports whether r came over TLS with a client
// certificate the handshake verified.
func VerifiedClient(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0
}

// certificateCaller returns the caller r's verified client certificate
// names, given what its header claims.
func certificateCaller(r *http.Request, claimed string) (string, error) {
	if !VerifiedClient(r) {
		return "", errors.New(errors.Unauthenticated, "a verified client certificate is required")
	}
	name := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if !NamedCaller(name) {
		return "", errors.New(errors.Unauthenticated, "the client certificate names no valid caller")
	}
	if claimed != "" && claimed != name {
		return "", errors.New(errors.Forbidden, "the caller named is not the client certificate's")
	}
	return name, nil
}

func (h *httpHandler) serve(w http.ResponseWriter, r *http.Request) {
	req := Request{
		Service: r.PathValue("service"),
		Method:  r.PathValue("method"),
		Caller:  r.Header.Get(HeaderCaller),
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if !ValidCaller(req.Caller) {
		h.fail(ctx, w, Request{Service: req.Service, Method: req.Method}, errCaller)
		return
	}
	if h.certCaller {
		var err error
		if req.Caller, err = certificateCaller(r, req.Caller); err != nil {
			h.fail(ctx, w, Request{Service: req.Service, Method: req.Method}, err)
			return
		}
	}
	if req.Caller != "" {
		ctx = WithCaller(ctx, req.Caller)
	}
	if v := r.Header.Get(HeaderDeadline); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			h.fail(ctx, w, req, errors.Errorf(errors.BadRequest, "%s header %q is not a whole number of milliseconds", HeaderDeadline, v))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, millis(ms))
		defer cancel()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(ctx, w, req, errors.Errorf(errors.BadRequest, "%s: request body exceeds %d bytes", shownRoute(req.Service+"/"+req.Method), h.max))
		} else {
			h.fail(ctx, w, req, errors.Wrap(err, errors.BadRequest, "reading request body"))
		}
		return
	}
	if !utf8.Valid(body) || loneSurrogate(body) {
		// encoding/json would turn the bad bytes, or an escaped lone
		// surrogate (\ud800, as a UTF-16 client sends one), into U+FFFD:
		// another string than the caller sent (an idempotency key, say).
		h.fail(ctx, w, req, errors.Errorf(errors.BadRequest, "%s: request body is not UTF-8", shownRoute(req.Service+"/"+req.Method)))
		return
	}
	req.Body = json.RawMessage(body)

	sctx, served := withSpanSlot(ctx)
	rsp := h.s(sctx, req)
	if rsp.Err != nil {
		if sc := served.sc; sc.IsValid() {
			// Logged under the span that failed (Trace's), not only
			// the caller's.
			ctx = trace.ContextWithSpanContext(ctx, sc)
		}
		h.fail(ctx, w, req, rsp.Err)
		return
	}
	out, err := json.Marshal(rsp.Body)
	if err != nil {
		h.fail(ctx, w, req, errors.Wrap(err, errors.Internal, "internal error"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out) // The caller sees a failed write as a transport error.
}

// millis converts a millisecond count to a duration, saturating instead of
// overflowing either way.
func millis(ms int64) time.Duration {
	switch {
	case ms <= 0:
		return 0 // passed already: the context is done at once
	case ms > math.MaxInt64/int64(time.Millisecond):
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// fail sends err's code and message, and logs its cause if asked to.
func (h *httpHandler) fail(ctx context.Context, w http.ResponseWriter, req Request, err error) {
	pub := errors.Public(err)
	if h.log != nil && errors.Unwrap(err) != nil {
		level := slog.LevelDebug
		if pub.Code == errors.Internal {
			level = slog.LevelError
		}
		h.log.Log(ctx, level, "rpc: error sent without its cause",
			"route", shownRoute(req.Service+"/"+req.Method), "caller", req.Caller,
			"code", string(pub.Code), "err", err)
	}
	b, _ := json.Marshal(errorBody{Code: pub.Code, Message: pub.Message}) // strings only: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errors.HTTPStatus(pub.Code))
	w.Write(b)
}

// NewHTTPClient returns the client side of the HTTP transport: a Service
// that sends each request to the server at baseURL ("http://ledger:8080")
// as described at HeaderDeadline, with the context's deadline, the
// request's caller, and the context's trace context. hc sends the requests;
// nil means a client of its own with default settings. Deadlines come from
// the context, so hc needs no timeout.
//
// Failures are *errors.Error values: the server's code and message as
// sent; Timeout when the context's deadline passes (or has passed: then
// nothing is sent) or the context is canceled; Unavailable when the server
// cannot be reached; for a failure without a corebank error body (a proxy's
// 502), the code errors.FromHTTPStatus gives its status.
func NewHTTPClient(baseURL string, hc *http.Client) Service {
	if hc == nil {
		hc = HTTPClient(nil)
	}
	c := &httpClient{base: strings.TrimSuffix(baseURL, "/") + "/rpc/", hc: hc}
	return c.call
}

// HTTPClient returns the http.Client NewHTTPClient uses by default, with
// tlsConfig for https URLs (nil: the system's defaults): for mutual TLS,
// one with the caller's certificate and the servers' CA.
func HTTPClient(tlsConfig *tls.Config) *http.Client {
	// Go's default transport keeps two idle connections per host: a
	// service called by many goroutines at once would dial (and leave in
	// TIME_WAIT) a connection for most calls.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no bound overall
	tr.MaxIdleConnsPerHost = 1024
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig.Clone()
	}
	return &http.Client{Transport: tr}
}

type httpClient struct {
	base string // baseURL + "/rpc/"
	hc   *http.Client
}

func (c *httpClient) call(ctx context.Context, req Request) Response {
	name := req.Service + "/" + req.Method
	if !validUTF8(reflect.ValueOf(req.Body), 0) {
		// json.Marshal would send U+FFFD in place of the bad bytes: a
		// different string, which the server could not refuse as the
		// in-process callee does.
		return Response{Err: errors.Errorf(errors.BadRequest, "%s: request holds a string that is not UTF-8", name)}
	}
	if !ValidCaller(req.Caller) {
		return Response{Err: errCaller}
	}
	body, err := json.Marshal(req.Body)
	if err != nil {
		return Response{Err: errors.Wrap(err, errors.BadRequest, fmt.Sprintf("%s: request body cannot be sent as JSON", name))}
	}
	u := c.base + url.PathEscape(req.Service) + "/" + url.PathEscape(req.Method)
	// Whether the request reached the wire whole: a connection lost after
	// that may have lost only the answer.
	var sent atomic.Bool
	traced := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(w httptrace.WroteRequestInfo) {
			if w.Err == nil {
				sent.Store(true)
			}
		},
	})
	hr, err := http.NewRequestWithContext(traced, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Response{Err: errors.Wrap(err, errors.Internal, fmt.Sprintf("%s: cannot build HTTP request", name))}
	}
	hr.Header.Set("Content-Type", "application/json")
	if req.Caller != "" {
		hr.Header.Set(HeaderCaller, req.Caller)
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		ms := (left - min(left/10, maxTripAllowance)).Milliseconds() // rounded down
		if ms < 1 {
			return Response{Err: errors.New(errors.Timeout, "deadline exceeded")}
		}
		hr.Header.Set(HeaderDeadline, strconv.FormatInt(ms, 10))
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hr.Header))

	res, err := c.hc.Do(hr)
	if err != nil {
		return Response{Err: transportError(ctx, name, err, sent.Load())}
	}
	defer res.Body.Close()
	out, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return Response{Err: transportError(ctx, name, err, true)}
	}
	if len(out) > maxResponseBytes {
		return Response{Err: errors.Errorf(errors.Internal, "%s: response body exceeds %d bytes", name, maxResponseBytes)}
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return Response{Body: json.RawMessage(out)}
	}
	var e errorBody
	if json.Unmarshal(out, &e) == nil && e.Code != "" {
		return Response{Err: errors.New(e.Code, e.Message)}
	}
	code := errors.FromHTTPStatus(res.StatusCode)
	if code == "" {
		code = errors.Internal // a 1xx or 3xx the HTTP client did not resolve
	}
	return Response{Err: errors.Errorf(code, "%s: HTTP %s", name, res.Status)}
}

// transportError classifies a failure to exchange a request and response:
// Timeout if ctx ended, or if the request was sent whole (the connection
// lost before or while the answer came: the call may have taken effect);
// Unavailable otherwise (connection refused, or lost before the request
// was sent: nothing was done).
func transportError(ctx context.Context, name string, err error, sent bool) error {
	switch ctx.Err() {
	case nil:
		if sent {
			return errors.Wrap(err, errors.Timeout, name+": the connection was lost after the request was sent; it may have taken effect")
		}
		return errors.Wrap(err, errors.Unavailable, name+": service unavailable")
	case context.Canceled:
		return errors.Wrap(err, errors.Timeout, "canceled")
	default:
		return errors.Wrap(err, errors.Timeout, "deadline exceeded")
	}
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// validUTF8 reports whether every string in v (struct fields, map keys and
// values, elements) is UTF-8, as JSON needs it to be sent unchanged.
func validUTF8(v reflect.Value, depth int) bool {
	if !v.IsValid() || depth > 64 {
		return true
	}
	switch v.Kind() {
	case reflect.String:
		return utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || validUTF8(v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && !validUTF8(v.Field(i), depth+1) {
				return false
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type() == rawMessageType {
			return utf8.Valid(v.Bytes())
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return true // base64 in JSON
		}
		for i := 0; i < v.Len(); i++ {
			if !validUTF8(v.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if !validUTF8(it.Key(), depth+1) || !validUTF8(it.Value(), depth+1) {
				return false
			}
		}
	}
	return true
}

// loneSurrogate reports whether a JSON text holds a \u escape of a UTF-16
// surrogate that is not half of a pair: encoding/json decodes it as U+FFFD.
func loneSurrogate(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			in = !in
		case c == '\\' && in:
			if i+1 < len(b) && b[i+1] == 'u' {
				r := hex4(b[i+2:])
				switch {
				case 0xd800 <= r && r < 0xdc00:
					if len(b) < i+12 || b[i+6] != '\\' || b[i+7] != 'u' {
						return true
					}
					if lo := hex4(b[i+8:]); lo < 0xdc00 || lo >= 0xe000 {
						return true
					}
					i += 11
					continue
				case 0xdc00 <= r && r < 0xe000:
					return true
				}
			}
			i++ // the escaped character
		}
	}
	return false
}

// hex4 returns the value of the four hex digits b starts with, or -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
