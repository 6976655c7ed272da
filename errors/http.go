package errors

import (
	"context"
	"net/http"
)

var (
	contextDeadline = context.DeadlineExceeded
	contextCanceled = context.Canceled
)

// HTTPStatus maps a code to its HTTP status. It is the only such mapping.
func HTTPStatus(c Code) int {
	switch c {
	case "":
		return http.StatusOK
	case BadRequest, CurrencyMismatch:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Conflict, AccountClosed:
		return http.StatusConflict
	case InsufficientFunds:
		return http.StatusUnprocessableEntity
	case Unauthenticated:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case Timeout:
		return http.StatusGatewayTimeout
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// FromHTTPStatus is HTTPStatus's inverse for statuses that carry no code of
// their own (a proxy's 502, a load balancer's 503).
func FromHTTPStatus(status int) Code {
	switch {
	case status < 400:
		return ""
	case status == http.StatusBadRequest:
		return BadRequest
	case status == http.StatusUnauthorized:
		return Unauthenticated
	case status == http.StatusForbidden:
		return Forbidden
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusConflict:
		return Conflict
	case status == http.StatusUnprocessableEntity:
		return InsufficientFunds
	case status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		return Timeout
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		return Unavailable
	default:
		return Internal
	}
}
