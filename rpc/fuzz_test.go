package rpc

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
)

// Request types for FuzzDecodeRequest: a struct with a nested struct (by
// value and by pointer), a promoted embedded field, a map of strings, a map
// and a slice of structs, an interface, a time.Time (a json.Unmarshaler,
// as ledger's as_of is) and fields without a tag or skipped.
type fuzzInner struct {
	Code   string `json:"code"`
	Amount int64  `json:"amount"`
}

type fuzzItem struct {
	ID  string `json:"id"`
	Qty int    `json:"qty"`
}

type fuzzEmbedded struct {
	Ref string `json:"ref"`
}

type fuzzReq struct {
	fuzzEmbedded
	Name     string              `json:"name"`
	Times    int                 `json:"times"`
	K        int                 `json:"k"` // the Kelvin sign folds to k
	Inner    fuzzInner           `json:"inner"`
	Ptr      *fuzzInner          `json:"ptr"`
	Meta     map[string]string   `json:"meta"`
	Accounts map[string]fuzzItem `json:"accounts"`
	Items    []fuzzItem          `json:"items"`
	Any      any                 `json:"any"`
	AsOf     time.Time           `json:"as_of,omitzero"`
	Untagged string
	Skipped  string `json:"-"`
}

// fuzzSchema is what the reference checks below know of a request type,
// written out by hand rather than read from the types by reflection (as
// the code under test does): a struct's fields by JSON name, a map's or a
// slice's elements. A nil schema is a value decoded its own way (an
// interface, a time.Time, a scalar): its objects' keys compare exactly.
type fuzzSchema struct {
	fields map[string]*fuzzSchema // a struct
	elem   *fuzzSchema            // a map (keyed) or a slice (not)
	keyed  bool
}

var (
	fuzzInnerSchema = &fuzzSchema{fields: map[string]*fuzzSchema{"code": nil, "amount": nil}}
	fuzzItemSchema  = &fuzzSchema{fields: map[string]*fuzzSchema{"id": nil, "qty": nil}}
	fuzzItemsSchema = &fuzzSchema{elem: fuzzItemSchema}
	fuzzMetaSchema  = &fuzzSchema{elem: nil, keyed: true}
	fuzzReqSchema   = &fuzzSchema{fields: map[string]*fuzzSchema{
		"ref": nil, "name": nil, "times": nil, "k": nil,
		"inner": fuzzInnerSchema, "ptr": fuzzInnerSchema,
		"meta":     fuzzMetaSchema,
		"accounts": {elem: fuzzItemSchema, keyed: true},
		"items":    fuzzItemsSchema,
		"any":      nil, "as_of": nil, "Untagged": nil,
	}}
)

// refCheck reads one JSON value from dec, whose schema is s, and reports
// whether one of its objects holds two keys that decode into the same
// place (struct fields match as encoding/json matches them, without
// regard to case: strings.EqualFold; map keys, and keys of objects of
// unknown type, only when equal), and whether an object decoded into a
// struct holds a key naming none of its fields.
func refCheck(dec *json.Decoder, s *fuzzSchema) (dup, unknown bool, err error) {
	tok, err := dec.Token()
	if err != nil {
		return false, false, err
	}
	switch tok {
	case json.Delim('['):
		var elem *fuzzSchema
		if s != nil && s.fields == nil && !s.keyed {
			elem = s.elem
		}
		for dec.More() {
			d, u, err := refCheck(dec, elem)
			if err != nil {
				return false, false, err
			}
			dup, unknown = dup || d, unknown || u
		}
		_, err = dec.Token()
		return dup, unknown, err
	case json.Delim('{'):
		var keys []string
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return false, false, err
			}
			k := tok.(string)
			var sub *fuzzSchema
			switch {
			case s != nil && s.fields != nil:
				found := false
				for name, fs := range s.fields {
					if strings.EqualFold(k, name) {
						sub, found = fs, true
					}
				}
				unknown = unknown || !found
				for _, prev := range keys {
					dup = dup || strings.EqualFold(prev, k)
				}
			case s != nil && s.keyed:
				sub = s.elem
				fallthrough
			default:
				for _, prev := range keys {
					dup = dup || prev == k
				}
			}
			keys = append(keys, k)
			d, u, err := refCheck(dec, sub)
			if err != nil {
				return false, false, err
			}
			dup, unknown = dup || d, unknown || u
		}
		_, err = dec.Token()
		return dup, unknown, err
	}
	return false, false, nil // a scalar
}

// valueTokens returns the string and number values (not keys) of the JSON
// text b, as far as it tokenizes.
func valueTokens(b []byte) (values, keys []string) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var inObject []bool // per open container: an object?
	wantKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return values, keys
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				inObject = append(inObject, true)
				wantKey = true
				continue
			case '[':
				inObject = append(inObject, false)
			default:
				inObject = inObject[:len(inObject)-1]
			}
		case string:
			if wantKey {
				keys = append(keys, v)
				wantKey = false
				continue
			}
			values = append(values, v)
		case json.Number:
			values = append(values, v.String())
		}
		wantKey = len(inObject) > 0 && inObject[len(inObject)-1]
	}
}

// messageVocabulary is text decodeRequest's messages may hold whatever the
// input: a value that is a part of it is not taken for an echo.
const messageVocabulary = "test/fuzz: request body: empty, want a JSON value; truncated JSON; " +
	"malformed JSON at byte ; invalid character looking for beginning of value object key string " +
	"after object key:value pair after array element in string literal in \\u hexadecimal character escape " +
	"in numeric literal in literal true (expecting 'r') false null after top-level value " +
	"unexpected end of JSON input; unexpected data after the JSON value, at byte ; field appears twice; " +
	"unknown field; cannot use a JSON number string bool array object as int int64 " +
	"rpc.fuzzReq rpc.fuzzInner rpc.fuzzItem map[string]string map[string]rpc.fuzzItem []rpc.fuzzItem " +
	"*rpc.fuzzInner interface {} time.Time Time.UnmarshalJSON: input is not a JSON string"

// cardLike finds what MaskCardNumbers should have masked: 12 digits, each
// after at most one space, dash or dot.
var cardLike = regexp.MustCompile(`[0-9](?:[ .\-]?[0-9]){11}`)

// decodeCase decodes b as a T both with decodeJSON and with encoding/json
// and checks that they agree, as described at FuzzDecodeRequest.
func decodeCase[T any](t *testing.T, b []byte, s *fuzzSchema) {
	const name = "test/fuzz"
	got, err := decodeJSON[T](name, b)

	var want T
	stdErr := json.Unmarshal(b, &want)
	dup, unknown, refErr := refCheck(json.NewDecoder(bytes.NewReader(b)), s)
	if stdErr == nil && refErr != nil {
		t.Fatalf("%T: the reference walk failed on JSON that encoding/json accepts: %v", want, refErr)
	}
	shouldAccept := stdErr == nil && !unknown && !dup

	if err == nil {
		switch {
		case stdErr != nil:
			t.Fatalf("%T: decodeRequest accepted %q, which encoding/json rejects: %v", want, b, stdErr)
		case dup:
			t.Fatalf("%T: decodeRequest accepted %q, which has a key twice in one object", want, b)
		case unknown:
			t.Fatalf("%T: decodeRequest accepted %q, which has an unknown field", want, b)
		case !reflect.DeepEqual(got, want):
			t.Fatalf("%T: decodeRequest(%q) = %#v, encoding/json gives %#v", want, b, got, want)
		}
		return
	}

	if shouldAccept {
		t.Fatalf("%T: decodeRequest rejected %q, which is valid, without a duplicate or unknown key: %v", want, b, err)
	}
	var e *errors.Error
	if !errors.As(err, &e) || e.Code != errors.BadRequest {
		t.Fatalf("%T: decodeRequest(%q) error %T %v, want a bad_request *errors.Error", want, b, err, err)
	}
	if e.Cause != nil {
		t.Fatalf("%T: decodeRequest(%q) error carries a cause (which quotes values): %v", want, b, e.Cause)
	}
	if !strings.HasPrefix(e.Message, name+": request body") {
		t.Fatalf("%T: decodeRequest(%q) message %q does not start with the method's name", want, b, e.Message)
	}
	if stdErr == nil && !unknown && dup && !strings.Contains(e.Message, "appears twice") {
		t.Fatalf("%T: decodeRequest(%q) message %q, want the duplicate named", want, b, e.Message)
	}
	if m := cardLike.FindString(e.Message); m != "" {
		t.Fatalf("%T: decodeRequest(%q) message %q shows %q unmasked", want, b, e.Message, m)
	}
	values, keys := valueTokens(b)
	for _, v := range values {
		if len(v) < 8 || !strings.Contains(e.Message, v) || strings.Contains(messageVocabulary, v) {
			continue
		}
		echoedKey := false
		for _, k := range keys {
			echoedKey = echoedKey || strings.Contains(k, v)
		}
		if !echoedKey {
			t.Fatalf("%T: decodeRequest(%q) message %q echoes the value %q", want, b, e.Message, v)
		}
	}
}

// FuzzDecodeRequest decodes arbitrary bytes as a struct, a map of strings
// and a slice of structs. For each: decodeRequest never panics; what it
// accepts encoding/json accepts, with the same value; it accepts exactly
// the valid JSON values with no unknown field and no key twice in one
// object (as a reference walk over json.Decoder tokens finds them:
// without regard to case for struct fields, exactly for map keys and
// objects of unknown type); and its errors are bad_request *errors.Error
// values without a cause, that name the method, show no card number and
// echo no string or number value of the input.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		// TestRouterRejectsBadJSON
		`{"name": "Ada",}`,
		`{"name": "Ada"`,
		``,
		`{"name": "Ada", "nmae": "x"}`,
		`{"name": "Ada", "times": "two"}`,
		`{"name": "Ada", "times": 45999935237786401234567}`,
		`{"name": "Ada", "times": 4599993523778640.5}`,
		`[1,2]`,
		`{"name": "Ada"} {"name": "Bo"}`,
		`{"name": "Ada"}}`,
		" {\"name\":\"Ada\",\"times\":1}\n",
		// TestDuplicateKeyIsRefused
		`{"name":"ada","name":"mallory"}`,
		`{"name":"ada","NAME":"mallory"}`,
		`{"NAME":"ada","nAmE":"mallory"}`,
		"{\"times\":1,\"name\":\"ada\",\"time\u017f\":2}",
		`{"times":1,"name":"ada","Times":2}`,
		`{"name":"name","times":1}`,
		`{"times":2,"name":"times"}`,
		// TestDuplicateKeyFollowsTheType
		`{"meta":{"Ref":"a","ref":"b"}}`,
		`{"meta":{"ref":"a","ref":"b"}}`,
		`{"items":[{"id":"a"},{"id":"b"}]}`,
		`{"items":[{"id":"a","ID":"b"}]}`,
		`{"name":"x","meta":{},"Meta":{}}`,
		`{"any":{"k":1,"K":2}}`,
		`{"any":{"k":1,"k":2}}`,
		`{"meta":{"a":"{\"b\":1,\"b\":2}"},"name":""}`,
		// TestLoneSurrogate
		`{"k":"a\ud800"}`,
		`{"k":"\ud83d\ude00"}`,
		`{"k":"x","\ud800":1}`,
		// Folding, embedding, maps of structs, pointers, untagged fields.
		"{\"k\":1,\"\u212a\":2}",
		"{\"meta\":{\"k\":\"a\",\"\u212a\":\"b\"}}",
		`{"ref":"r","REF":"s"}`,
		`{"accounts":{"a":{"id":"x","Id":"y"}},"ptr":{"code":"c","amount":-1}}`,
		`{"accounts":{"a":{"id":"x"},"A":{"id":"y"}}}`,
		`{"untagged":"u","inner":{"code":"GBP","CODE":"EUR"}}`,
		`{"Skipped":"s"}`,
		`{"as_of":"2026-01-02T03:04:05Z","any":[{"a":{"b":1,"b":2}}]}`,
		`{"as_of":"4599993523778640"}`,
		`{"as_of":"tomorrow-noon"}`,
		`{"meta":{"4599993523778640":"x","4599993523778640":"y"}}`,
		`{"meta":{"a":4599993523778640}}`,
		`[{"id":"a","qty":1},{"id":"b","ID":"c"}]`,
		`{"a":"b","A":"c"}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeCase[fuzzReq](t, b, fuzzReqSchema)
		decodeCase[map[string]string](t, b, fuzzMetaSchema)
		decodeCase[[]fuzzItem](t, b, fuzzItemsSchema)
		decodeCase[any](t, b, nil)
	})
}
