package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"

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
	if key, ok := duplicateKey(b); ok {
		return errors.Errorf(errors.BadRequest, "%s: request body: field %q appears twice", name, key)
	}
	return nil
}

// duplicateKey returns a key that appears twice in one object of the JSON
// value b (compared as encoding/json matches fields: without regard to
// case), if any. encoding/json lets the last one win, so a body holding
// "customer_id" and "Customer_ID" would mean one thing to a proxy that
// checked the first and another to the service. b must be valid JSON.
func duplicateKey(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// One frame per open object or array: the keys seen (nil for an
	// array), and whether the next string token is a key.
	type frame struct {
		keys  map[string]struct{}
		isKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false // io.EOF; any other error was reported by Decode
		}
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top >= 0 && stack[top].keys != nil {
					stack[top].isKey = true // this object was a value
				}
				stack = append(stack, frame{keys: map[string]struct{}{}, isKey: true})
			case '[':
				if top >= 0 && stack[top].keys != nil {
					stack[top].isKey = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:top]
			}
		case string:
			if top >= 0 && stack[top].keys != nil && stack[top].isKey {
				k := fold(t)
				if _, dup := stack[top].keys[k]; dup {
					return t, true
				}
				stack[top].keys[k] = struct{}{}
				stack[top].isKey = false
				continue
			}
			if top >= 0 && stack[top].keys != nil {
				stack[top].isKey = true
			}
		default:
			if top >= 0 && stack[top].keys != nil {
				stack[top].isKey = true
			}
		}
	}
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

// fold maps each rune of s to the smallest of its simple case folding
// orbit ('K', 'k' and the Kelvin sign all to 'K'), as encoding/json's
// field matching folds.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		return m
	}, s)
}
