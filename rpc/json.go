package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/corebank/corebank/errors"
)

// decodeRequest decodes a JSON request body into v strictly: unknown fields
// and trailing data are errors. Its errors are BadRequest, with a message
// that says what is wrong and where, prefixed by name ("ledger/transfer").
func decodeRequest(name string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.Wrap(err, errors.BadRequest, name+": request body: "+describeJSONError(err))
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return errors.Errorf(errors.BadRequest, "%s: request body: unexpected data after the JSON value, at byte %d", name, end)
	}
	return nil
}

// describeJSONError says what a decoding error means, for a caller.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.IsErr(err, io.EOF):
		return "empty, want a JSON value"
	case errors.IsErr(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q: cannot use a JSON %s as %s", typ.Field, typ.Value, typ.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s as %s", typ.Value, typ.Type)
	default:
		// Unknown fields and the like: the package's own words are precise.
		return strings.TrimPrefix(err.Error(), "json: ")
	}
}

// isNull reports whether b is the JSON literal null.
func isNull(b []byte) bool {
	return string(bytes.TrimSpace(b)) == "null"
}
