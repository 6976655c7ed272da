package cardnet

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/moov-io/iso8583/field"

	"github.com/corebank/corebank/internal/ascii"
)

// Message is one ISO 8583 message: an MTI and data elements, each held as
// the characters it carries on the wire (fixed-length elements at their full
// width, variable-length ones without their length prefix). Data element 1,
// the bitmap, is not stored: Pack derives it from the elements present.
//
// A Message is not safe for concurrent modification. Its String and LogValue
// mask the PAN and leave out card secrets (tracks, expiry, CVC2, PIN).
type Message struct {
	spec   *Spec
	mti    string
	fields []element // ascending by number
}

// element is one data element of a Message.
type element struct {
	n int
	v string
}

// NewMessage returns an empty message with the given MTI.
func (s *Spec) NewMessage(mti string) *Message {
	return &Message{spec: s, mti: mti, fields: make([]element, 0, 24)}
}

// Spec returns the spec the message is laid out by.
func (m *Message) Spec() *Spec { return m.spec }

// MTI returns the message type indicator ("0100").
func (m *Message) MTI() string { return m.mti }

// SetMTI sets the message type indicator.
func (m *Message) SetMTI(mti string) { m.mti = mti }

// find returns the index of element n, or where it would go.
func (m *Message) find(n int) (int, bool) {
	return slices.BinarySearchFunc(m.fields, n, func(e element, n int) int { return cmp.Compare(e.n, n) })
}

// Get returns data element n, or "" if it is absent.
func (m *Message) Get(n int) string {
	v, _ := m.Lookup(n)
	return v
}

// Lookup returns data element n and whether it is present (an LLVAR element
// may be present and empty).
func (m *Message) Lookup(n int) (string, bool) {
	i, ok := m.find(n)
	if !ok {
		return "", false
	}
	return m.fields[i].v, true
}

// Has reports whether data element n is present.
func (m *Message) Has(n int) bool {
	_, ok := m.find(n)
	return ok
}

// Set sets data element n to v, the characters it carries (for a fixed-length
// element, exactly its length). Pack reports elements the spec does not
// define or values that do not fit.
func (m *Message) Set(n int, v string) {
	i, ok := m.find(n)
	if ok {
		m.fields[i].v = v
		return
	}
	m.fields = slices.Insert(m.fields, i, element{n, v})
}

// Unset removes data element n.
func (m *Message) Unset(n int) {
	if i, ok := m.find(n); ok {
		m.fields = slices.Delete(m.fields, i, i+1)
	}
}

// Fields returns the numbers of the data elements present, ascending.
func (m *Message) Fields() []int {
	ns := make([]int, len(m.fields))
	for i, e := range m.fields {
		ns[i] = e.n
	}
	return ns
}

// Clone returns a copy of m that shares nothing mutable with it.
func (m *Message) Clone() *Message {
	return &Message{spec: m.spec, mti: m.mti, fields: slices.Clone(m.fields)}
}

// Pack returns the message's wire form: MTI, bitmap (primary, plus secondary
// only when an element above 64 is present) and the data elements in order.
// The 2-byte length header is not included: that is framing.
func (m *Message) Pack() ([]byte, error) {
	if !isDigits(m.mti, 4) {
		return nil, fmt.Errorf("pack: MTI %q is not 4 digits", m.mti)
	}
	s := m.spec
	bitmap := field.NewInstanceOf(s.bitmap).(*field.Bitmap)
	for _, e := range m.fields {
		if !s.Defines(e.n) || s.isPresenceBit(e.n) {
			return nil, fmt.Errorf("pack: field %d is not a data element of spec %q", e.n, s.Name())
		}
		bitmap.Set(e.n)
	}
	out := make([]byte, 0, 256)
	b, err := packField(s.mti, m.mti)
	if err != nil {
		return nil, fmt.Errorf("pack MTI: %w", err)
	}
	out = append(out, b...)
	b, err = bitmap.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack bitmap: %w", err)
	}
	out = append(out, b...)
	for _, e := range m.fields {
		b, err := packField(s.moov.Fields[e.n], e.v)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w", s.name(e.n), err)
		}
		out = append(out, b...)
	}
	return out, nil
}

func packField(spec field.Field, v string) ([]byte, error) {
	f := field.NewInstanceOf(spec)
	if err := f.SetBytes([]byte(v)); err != nil {
		return nil, err
	}
	return f.Pack()
}

// UnpackError reports a message that could not be decoded. Field says where
// decoding stopped: 0 the MTI, 1 the bitmap, n > 1 data element n (for bytes
// left over after the last element, that element).
//
// Partial holds what was decoded: the MTI and the elements before Field (all
// of them for left-over bytes), enough to answer with a format error. It is
// nil when the MTI or the bitmap could not be read: then nothing can be
// answered.
type UnpackError struct {
	Field   int
	Err     error
	Partial *Message
}

// Error says where decoding stopped and why.
func (e *UnpackError) Error() string {
	switch e.Field {
	case 0:
		return "unpack MTI: " + e.Err.Error()
	case 1:
		return "unpack bitmap: " + e.Err.Error()
	}
	return fmt.Sprintf("unpack DE%d: %v", e.Field, e.Err)
}

// Unwrap returns the underlying error.
func (e *UnpackError) Unwrap() error { return e.Err }

// Unpack decodes one message (without its length header). Every failure is
// an *UnpackError; b may be anything, including garbage.
func (s *Spec) Unpack(b []byte) (m *Message, err error) {
	cur := 0 // the element being decoded
	defer func() {
		// The field codecs are a third-party library: a panic on hostile
		// input must not take the gateway down. It is reported as what it is.
		if r := recover(); r != nil {
			m, err = nil, &UnpackError{Field: cur, Err: fmt.Errorf("%w: %v", errPanic, r)}
		}
	}()
	return s.unpack(b, &cur)
}

var errPanic = errorString("decoder panicked")

type errorString string

func (e errorString) Error() string { return string(e) }

func (s *Spec) unpack(b []byte, cur *int) (*Message, error) {
	mti := field.NewInstanceOf(s.mti)
	off, err := mti.Unpack(b)
	if err != nil {
		return nil, &UnpackError{Field: 0, Err: err}
	}
	v, err := mti.Bytes()
	if err != nil {
		return nil, &UnpackError{Field: 0, Err: err}
	}
	if !isDigits(string(v), 4) {
		return nil, &UnpackError{Field: 0, Err: fmt.Errorf("MTI %q is not 4 digits", v)}
	}
	m := s.NewMessage(string(v))

	*cur = 1
	bitmap := field.NewInstanceOf(s.bitmap).(*field.Bitmap)
	n, err := bitmap.Unpack(b[off:])
	if err != nil {
		return nil, &UnpackError{Field: 1, Err: err}
	}
	off += n
	// A further bitmap must be able to announce a defined element: with the
	// 1987 layout (elements 2..128) bit 65 may not announce a third bitmap.
	bits := s.bitmapBits()
	if limit := (s.max + bits - 1) / bits * bits; bitmap.Len() > limit {
		return nil, &UnpackError{Field: 1, Err: fmt.Errorf("%d bitmaps, but the spec defines elements up to %d only", bitmap.Len()/bits, s.max)}
	}

	last := 1
	for i := 2; i <= bitmap.Len(); i++ {
		if s.isPresenceBit(i) || !bitmap.IsSet(i) {
			continue
		}
		*cur = i
		spec, ok := s.moov.Fields[i]
		if !ok {
			return nil, &UnpackError{Field: i, Err: fmt.Errorf("field %d is not defined by spec %q", i, s.Name()), Partial: m}
		}
		f := field.NewInstanceOf(spec)
		n, err := f.Unpack(b[off:])
		if err != nil {
			return nil, &UnpackError{Field: i, Err: err, Partial: m}
		}
		raw, err := f.Bytes()
		if err != nil {
			return nil, &UnpackError{Field: i, Err: err, Partial: m}
		}
		// Keep fixed-length elements at their wire width even when the
		// spec strips padding on the way in, so "000123" stays "000123".
		if sp := spec.Spec(); sp.Pad != nil && isFixed(sp.Pref) {
			raw = sp.Pad.Pad(raw, sp.Length)
		}
		m.fields = append(m.fields, element{i, string(raw)}) // in ascending order
		off += n
		last = i
	}
	if off != len(b) {
		return nil, &UnpackError{Field: last, Err: fmt.Errorf("%d bytes after the end of the message", len(b)-off), Partial: m}
	}
	return m, nil
}

// name is how errors refer to data element n: "DE4 (Amount, transaction)".
func (s *Spec) name(n int) string {
	if d := s.Description(n); d != "" {
		return "DE" + strconv.Itoa(n) + " (" + d + ")"
	}
	return "DE" + strconv.Itoa(n)
}

// redacted lists the data elements never written to logs: card secrets.
// The PAN (2, 34) is masked rather than left out.
func redacted(n int) bool {
	switch n {
	case 14, // expiry
		35, 36, 45, // track data
		48, // additional data: carries CVC2
		52, // PIN block
		55: // ICC data
		return true
	}
	return false
}

// String returns a one-line dump of the message for logs and test failures,
// with the PAN masked and card secrets left out.
func (m *Message) String() string {
	var b strings.Builder
	b.WriteString(m.mti)
	for _, e := range m.fields {
		fmt.Fprintf(&b, " %d=%q", e.n, m.safe(e))
	}
	return b.String()
}

// LogValue logs the message as a group: the MTI and each data element under
// its number, with the PAN masked and card secrets left out.
func (m *Message) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(m.fields)+1)
	attrs = append(attrs, slog.String("mti", m.mti))
	for _, e := range m.fields {
		attrs = append(attrs, slog.String(strconv.Itoa(e.n), m.safe(e)))
	}
	return slog.GroupValue(attrs...)
}

// shown lists the data elements logged as sent: codes, amounts, dates,
// ids and the original data elements, which cannot carry card data. Free
// text (41 to 43) is logged with long digit runs hidden; any other element
// by its length only, since a network may put anything in it (Visa carries
// the CVV2 in DE126).
func shown(n int) bool {
	switch n {
	case 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 15, 16, 18, 19, 22, 23, 25, 26,
		32, 33, 37, 38, 39, 49, 50, 51, 70, 90, 95:
		return true
	}
	return false
}

func (m *Message) safe(e element) string {
	switch {
	case e.n == 2 || e.n == 34:
		return PAN(e.v).Masked()
	case redacted(e.n):
		return "[redacted]"
	case shown(e.n):
		return e.v
	case e.n >= 41 && e.n <= 43:
		return ascii.MaskCardNumbers(e.v)
	}
	return "[" + strconv.Itoa(len(e.v)) + " characters]"
}

// isDigits reports whether s is exactly n ASCII digits (any length if n < 0).
func isDigits(s string, n int) bool {
	return (n < 0 || len(s) == n) && ascii.Digits(s)
}
