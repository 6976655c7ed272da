// Package errors is corebank's one error vocabulary.
//
// Every error that crosses a service boundary carries a Code from a small,
// closed set, a human message safe to show the caller, and an optional cause
// that is logged but never sent. Whether an error is worth retrying follows
// from its code alone. Codes map to HTTP statuses here, in HTTPStatus, and to
// ISO 8583 response codes in the cardnet package, each in exactly one place.
package errors

import (
	stderrors "errors"
	"fmt"
)

// Code names a class of failure. Codes are part of the wire contract: they
// travel in RPC responses and in the public API, so never rename one.
type Code string

// The vocabulary. Add a code only when a caller must act differently on it.
const (
	// BadRequest: the request is malformed or breaks a rule of its own
	// (unbalanced transfer, negative amount, oversized metadata).
	BadRequest Code = "bad_request"
	// NotFound: a referenced object does not exist (or is not the caller's).
	NotFound Code = "not_found"
	// Conflict: the request contradicts the current state, or an
	// idempotency key was reused with a different request.
	Conflict Code = "conflict"
	// InsufficientFunds: the debit would take available funds below the
	// account's limit.
	InsufficientFunds Code = "insufficient_funds"
	// CurrencyMismatch: an amount's currency differs from its account's.
	CurrencyMismatch Code = "currency_mismatch"
	// AccountClosed: the account no longer accepts postings.
	AccountClosed Code = "account_closed"
	// Unauthenticated: the caller did not prove who it is.
	Unauthenticated Code = "unauthenticated"
	// Forbidden: the caller is known but may not do this.
	Forbidden Code = "forbidden"
	// Timeout: the outcome is unknown: the deadline passed before the work
	// finished, or its answer was lost (a connection dropped after the
	// request was sent, a database's answer to COMMIT); the effect may or
	// may not have happened, so retry with the same idempotency key.
	Timeout Code = "timeout"
	// Unavailable: a dependency is down or overloaded; nothing was done.
	Unavailable Code = "unavailable"
	// Internal: a bug or an unexpected failure. Details are only in the log.
	Internal Code = "internal"
)

// Retryable reports whether a request that failed with c may succeed if sent
// again unchanged (with the same idempotency key).
func (c Code) Retryable() bool {
	return c == Timeout || c == Unavailable
}

// Error is corebank's error value.
type Error struct {
	Code    Code
	Message string // safe to show the caller
	Cause   error  // logged, never sent over the wire
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return string(e.Code) + ": " + e.Message
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an error with code c and message msg.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Errorf returns an error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code c and message msg whose cause is err.
func Wrap(err error, c Code, msg string) *Error {
	return &Error{Code: c, Message: msg, Cause: err}
}

// CodeOf returns the code of the first *Error in err's chain. A nil error has
// no code (""); an error outside the vocabulary is Internal, except that
// context deadlines and cancellations are Timeout.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if stderrors.As(err, &e) {
		return e.Code
	}
	if stderrors.Is(err, contextDeadline) || stderrors.Is(err, contextCanceled) {
		return Timeout
	}
	return Internal
}

// Is reports whether err carries code c.
func Is(err error, c Code) bool { return err != nil && CodeOf(err) == c }

// MessageOf returns the message that may be shown to a caller for err.
// Errors outside the vocabulary show as "internal error": their text may hold
// internals (SQL, file paths) and stays in the log.
func MessageOf(err error) string {
	var e *Error
	if stderrors.As(err, &e) {
		return e.Message
	}
	if c := CodeOf(err); c == Timeout {
		return "deadline exceeded"
	}
	return "internal error"
}

// Public returns err reduced to what may cross a trust boundary: its code and
// message, without its cause.
func Public(err error) *Error {
	if err == nil {
		return nil
	}
	return &Error{Code: CodeOf(err), Message: MessageOf(err)}
}

// The standard library's helpers, so callers need import only this package.
var (
	As     = stderrors.As
	Join   = stderrors.Join
	Unwrap = stderrors.Unwrap
)

// IsErr is the standard library's errors.Is (Is here tests codes).
func IsErr(err, target error) bool { return stderrors.Is(err, target) }
