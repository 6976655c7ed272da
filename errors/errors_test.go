package errors_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
)

func TestCodeOf(t *testing.T) {
	wrapped := fmt.Errorf("post hold h1: %w", errors.New(errors.InsufficientFunds, "insufficient funds"))
	for _, tc := range []struct {
		err  error
		want errors.Code
	}{
		{nil, ""},
		{errors.New(errors.NotFound, "x"), errors.NotFound},
		{wrapped, errors.InsufficientFunds},
		{io.EOF, errors.Internal},
		{context.DeadlineExceeded, errors.Timeout},
		{fmt.Errorf("call: %w", context.Canceled), errors.Timeout},
	} {
		if got := errors.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestRetryableOnlyForTransientCodes(t *testing.T) {
	for _, c := range []errors.Code{errors.BadRequest, errors.NotFound, errors.Conflict, errors.InsufficientFunds, errors.CurrencyMismatch, errors.AccountClosed, errors.Unauthenticated, errors.Forbidden, errors.Internal} {
		if c.Retryable() {
			t.Errorf("%s is retryable", c)
		}
	}
	for _, c := range []errors.Code{errors.Timeout, errors.Unavailable} {
		if !c.Retryable() {
			t.Errorf("%s is not retryable", c)
		}
	}
}

// Internals never reach a caller: an error outside the vocabulary shows as
// "internal error", and Public drops the cause.
func TestPublicHidesCauses(t *testing.T) {
	secret := fmt.Errorf("pq: relation \"accounts\" does not exist at /var/lib/db")
	for _, err := range []error{secret, errors.Wrap(secret, errors.Unavailable, "ledger unavailable")} {
		p := errors.Public(err)
		if strings.Contains(p.Error(), "relation") || p.Cause != nil {
			t.Errorf("Public(%v) = %v: leaks the cause", err, p)
		}
	}
	if got := errors.MessageOf(secret); got != "internal error" {
		t.Errorf("MessageOf(foreign error) = %q", got)
	}
	w := errors.Wrap(secret, errors.Unavailable, "ledger unavailable")
	if !errors.IsErr(w, secret) {
		t.Error("a wrapped cause is not reachable with IsErr")
	}
}

// HTTPStatus and FromHTTPStatus agree on every code that has its own status.
func TestHTTPStatusRoundTrip(t *testing.T) {
	for _, c := range []errors.Code{errors.BadRequest, errors.NotFound, errors.Conflict, errors.InsufficientFunds, errors.Unauthenticated, errors.Forbidden, errors.Timeout, errors.Unavailable, errors.Internal} {
		if got := errors.FromHTTPStatus(errors.HTTPStatus(c)); got != c {
			t.Errorf("FromHTTPStatus(HTTPStatus(%s)) = %s", c, got)
		}
	}
	if errors.HTTPStatus("") != http.StatusOK || errors.HTTPStatus("no_such_code") != http.StatusInternalServerError {
		t.Error("empty code is not 200, or an unknown code is not 500")
	}
	if errors.FromHTTPStatus(http.StatusBadGateway) != errors.Unavailable || errors.FromHTTPStatus(http.StatusTooManyRequests) != errors.Unavailable {
		t.Error("proxy failures are not Unavailable")
	}
}
