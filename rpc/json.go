package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
)

// decodeRequest decodes a JSON request body into v strictly: unknown fields
// and trailing data are errors. Its errors are BadRequest, with a message
// that says what is wrong and where, prefixed by name ("ledger/transfer").
func decodeRequest(name string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// Without its cause, which quotes the caller's values (logged),
		// and with anything like a card number masked.
		return errors.New(errors.BadRequest, ascii.MaskCardNumbers(name+": request body: "+describeJSONError(err)))
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return errors.Errorf(errors.BadRequest, "%s: request body: unexpected data after the JSON value, at byte %d", name, end)
	}
	if key, ok := duplicateKey(b, reflect.TypeOf(v)); ok {
		return errors.New(errors.BadRequest, ascii.MaskCardNumbers(fmt.Sprintf("%s: request body: field %q appears twice", name, key)))
	}
	return nil
}

// duplicateKey returns a key that appears twice in one object of the JSON
// value b, which decodes into a value of type t, if any. In an object
// decoded into a struct keys are compared as encoding/json matches fields,
// without regard to case; in a map, or where the type is not known, they
// are compared exactly (map keys decode exactly). encoding/json lets the
// last of two keys win, so a body holding "customer_id" and "Customer_ID"
// would mean one thing to a proxy that checked the first and another to
// the service. b must be valid JSON.
func duplicateKey(b []byte, t reflect.Type) (string, bool) {
	key, dup, _ := walkKeys(json.NewDecoder(bytes.NewReader(b)), t)
	return key, dup
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// walkKeys reads one JSON value from dec, which decodes into type t (nil:
// not known), and returns the first key found twice in one of its objects.
func walkKeys(dec *json.Decoder, t reflect.Type) (string, bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return "", false, nil // a scalar
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshaler)) {
		t = nil // decoded its own way: keys compared exactly
	}
	if d == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if k, dup, err := walkKeys(dec, elem); dup || err != nil {
				return k, dup, err
			}
		}
		_, err := dec.Token() // ]
		return "", false, err
	}
	var fields map[string]reflect.Type // a struct's, by folded JSON name
	var elem reflect.Type              // a map's values
	switch {
	case t != nil && t.Kind() == reflect.Struct:
		fields = jsonFields(t)
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false, err
		}
		k, _ := tok.(string)
		id, vt := k, elem
		if fields != nil {
			id = fold(k)
			vt = fields[id]
		}
		if _, dup := seen[id]; dup {
			return k, true, nil
		}
		seen[id] = struct{}{}
		if k, dup, err := walkKeys(dec, vt); dup || err != nil {
			return k, dup, err
		}
	}
	_, err = dec.Token() // }
	return "", false, err
}

// structFields caches jsonFields by type.
var structFields sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields returns the fields encoding/json decodes into struct type t,
// by folded JSON name, embedded structs' fields included.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := structFields.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, ok := m[k]; !ok {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[fold(name)] = f.Type
	}
	structFields.Store(t, m)
	return m
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
			return fmt.Sprintf("field %q: cannot use a JSON %s as %s", typ.Field, jsonKind(typ.Value), typ.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s as %s", jsonKind(typ.Value), typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The package's own words, naming a key, are precise.
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		// A type that decodes itself (a time, say) or a ",string" field
		// refused a value, in words that quote it: not to be echoed.
		return "a value is not valid for its field"
	}
}

// isNull reports whether b is the JSON literal null.
func isNull(b []byte) bool {
	return string(bytes.TrimSpace(b)) == "null"
}

// fold maps each rune of s to one rune of its simple case folding orbit,
// as encoding/json's field matching folds: the orbit's ASCII letter in
// lower case if it has one ('K', 'k' and the Kelvin sign all to 'k'), else
// its smallest rune. A key in lower-case ASCII folds to itself, uncopied.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		case r < 0x80:
			return r // its orbit's ASCII letter in lower case, or alone
		}
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		if 'A' <= m && m <= 'Z' {
			m += 'a' - 'A' // the orbit's ASCII letter, in lower case
		}
		return m
	}, s)
}

// jsonKind is the kind of a JSON value as encoding/json names it in a type
// error ("string", "number 4599993523778640"): the kind only, since the
// value is the caller's and could be a card number.
func jsonKind(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	return kind
}
