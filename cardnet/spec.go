package cardnet

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
	"github.com/moov-io/iso8583/specs"
)

//go:embed spec/iso8583-1987-ascii.json
var defaultSpecJSON []byte

// maxSpecSize bounds what LoadSpec reads: a full 192-field spec is ~25 KiB.
const maxSpecSize = 1 << 20

// Spec is the layout of the messages a network speaks: for each data element
// its encoding, length and length prefix. It is data, loaded from a JSON file
// in moov-io/iso8583's spec-builder format, so a bank can speak its network's
// dialect without code changes. A Spec is immutable and safe for concurrent
// use.
//
// Field 0 is the MTI (4 characters), field 1 the bitmap. The bitmap is read
// and written the standard way: a 64-bit primary bitmap, followed by a
// secondary bitmap only when a data element above 64 is present (bit 1 set).
type Spec struct {
	moov   *iso8583.MessageSpec
	mti    field.Field
	bitmap *field.Bitmap
	max    int // highest data element the spec defines
}

// DefaultSpec returns the spec corebank ships: ISO 8583:1987, every data
// element as ASCII characters, the bitmap as 16 hexadecimal characters per
// 64 bits. docs/iso8583.md describes it field by field. It is loaded once
// and shared: a Spec is read-only (do not change its MessageSpec).
func DefaultSpec() *Spec { return defaultSpec() }

var defaultSpec = sync.OnceValue(func() *Spec {
	s, err := LoadSpec(bytes.NewReader(defaultSpecJSON))
	if err != nil {
		// The embedded file is tested; failing here is a build defect.
		panic(fmt.Sprintf("cardnet: embedded default spec: %v", err))
	}
	return s
})

// DefaultSpecJSON returns the JSON of the default spec, a starting point for
// a bank that must describe its network's dialect.
func DefaultSpecJSON() []byte { return bytes.Clone(defaultSpecJSON) }

// LoadSpec reads a spec in moov-io/iso8583's spec-builder JSON format (see
// DefaultSpecJSON). It checks what cardnet relies on: a 4-character fixed MTI
// as field 0, a bitmap as field 1, and the data elements that requests and
// responses use.
func LoadSpec(r io.Reader) (s *Spec, err error) {
	defer func() {
		// moov-io's importer panics on some malformed specs (a negative
		// length, an empty composite): an error, not a crash at start.
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("import spec: %v", p)
		}
	}()
	raw, err := io.ReadAll(io.LimitReader(r, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if len(raw) > maxSpecSize {
		return nil, fmt.Errorf("read spec: larger than %d bytes", maxSpecSize)
	}
	ms, err := specs.ImportJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("import spec: %w", err)
	}
	return newSpec(ms)
}

func newSpec(ms *iso8583.MessageSpec) (*Spec, error) {
	if err := ms.Validate(); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	s := &Spec{moov: ms, mti: ms.Fields[0]}
	s.bitmap = ms.Fields[1].(*field.Bitmap) // Validate checked the type
	if sp := s.mti.Spec(); sp.Length != 4 || sp.Pref == nil || !isFixed(sp.Pref) {
		return nil, fmt.Errorf("invalid spec: field 0 (MTI) must be fixed, 4 characters")
	}
	for n, f := range ms.Fields {
		if n < 0 {
			return nil, fmt.Errorf("invalid spec: negative field number %d", n)
		}
		if n > 1 && s.isPresenceBit(n) {
			return nil, fmt.Errorf("invalid spec: field %d is a bitmap presence bit", n)
		}
		if n > 1 {
			if _, ok := f.(*field.Bitmap); ok {
				return nil, fmt.Errorf("invalid spec: field %d is a bitmap", n)
			}
		}
		s.max = max(s.max, n)
	}
	if !s.bitmap.Spec().DisableAutoExpand && s.bitmap.Spec().Length != 8 {
		// Standard bitmaps are 8 bytes each, extended by bit 1; a 16-byte
		// one (moov's Spec87ASCII) reads standard traffic wrongly.
		return nil, fmt.Errorf("invalid spec: field 1 (bitmap) must be 8 bytes, extended by bit 1, or fixed (disableAutoExpand)")
	}
	if s.bitmap.Spec().DisableAutoExpand && s.max > s.bitmapBits() {
		return nil, fmt.Errorf("invalid spec: field %d lies beyond the fixed %d-bit bitmap", s.max, s.bitmapBits())
	}
	// The data elements ParseRequest, Respond and the Server read or write:
	// a spec that lacks one cannot carry corebank's traffic.
	for _, n := range [...]int{2, 3, 4, 7, 11, 18, 22, 32, 37, 38, 39, 41, 42, 43, 49, 70, 90} {
		if _, ok := ms.Fields[n]; !ok {
			return nil, fmt.Errorf("invalid spec: field %d is required by cardnet and missing", n)
		}
	}
	// The fixed elements corebank writes in its answers, at the standard's
	// lengths: a spec with another (DE38 of 8, say) would accept requests
	// and then fail to pack the approval.
	// And those ParseRequest reads at the standard's lengths.
	for n, length := range map[int]int{3: 6, 4: 12, 7: 10, 11: 6, 18: 4, 22: 3, 37: 12, 38: 6, 39: 2, 41: 8, 42: 15, 43: 40, 49: 3, 70: 3, 90: 42} {
		if sp := ms.Fields[n].Spec(); sp.Length != length || sp.Pref == nil || !isFixed(sp.Pref) {
			return nil, fmt.Errorf("invalid spec: field %d must be fixed, %d characters (the standard's), as corebank reads and writes it", n, length)
		}
	}
	if err := s.probe(); err != nil {
		return nil, err
	}
	return s, nil
}

// probeValues are standard values of the elements cardnet relies on (field
// 0 is the MTI). Each must come back from a pack and an unpack as it went:
// a numeric type that drops leading zeros, say, would turn STAN "000001"
// into "1", which no answer could carry. DE38 is left out: a numeric one is
// allowed (docs/iso8583.md), and an approval code it cannot carry is
// handled when answering.
var probeValues = map[int]string{
	0: "0100", 2: "4000001234567899", 3: "000000", 4: "000000001000", 7: "0101000000",
	11: "000001", 18: "0742", 22: "051", 32: "012345", 37: "000000000001", 39: "00",
	41: "TERM0001", 42: "MERCHANT0000001", 43: "CORNER CAFE             LONDON        GB",
	49: "826", 70: "001", 90: "010000000101010000000000000000000000000000",
}

// probe packs and unpacks each of probeValues on its own, and refuses the
// spec, naming the field, if one does not come back unchanged.
func (s *Spec) probe() error {
	for n, v := range probeValues {
		if sp := s.moov.Fields[n].Spec(); (n == 2 || n == 32) && isFixed(sp.Pref) && len(v) < sp.Length {
			// A variable element some networks fix (DE32 as n 11, as
			// DE90 carries it), probed at its own length, zero-filled.
			v = strings.Repeat("0", sp.Length-len(v)) + v
		}
		m := s.NewMessage(probeValues[0])
		if n != 0 {
			m.Set(n, v)
		}
		b, err := m.Pack()
		var back *Message
		if err == nil {
			back, err = s.Unpack(b)
		}
		switch {
		case err != nil:
			return fmt.Errorf("invalid spec: field %d cannot carry a standard value: %w", n, err)
		case back.MTI() != probeValues[0]:
			return fmt.Errorf("invalid spec: field 0 (MTI) %q comes back as %q", probeValues[0], back.MTI())
		case n != 0 && back.Get(n) != v:
			return fmt.Errorf("invalid spec: field %d does not come back as it was packed (%d characters in, %d out)", n, len(v), len(back.Get(n)))
		}
	}
	return nil
}

func isFixed(p prefix.Prefixer) bool {
	switch p.Inspect() {
	case "ASCII.Fixed", "EBCDIC.Fixed", "BCD.Fixed", "Binary.Fixed", "Hex.Fixed", "None.Fixed":
		return true
	}
	return false
}

// bitmapBits is the number of bits in one bitmap (64 for the standard's
// 8-byte bitmaps).
func (s *Spec) bitmapBits() int {
	n := s.bitmap.Spec().Length
	if n == 0 {
		n = 8
	}
	return n * 8
}

// isPresenceBit reports whether bit n announces a further bitmap (1, 65, 129)
// rather than a data element.
func (s *Spec) isPresenceBit(n int) bool {
	return !s.bitmap.Spec().DisableAutoExpand && n%s.bitmapBits() == 1
}

// Name returns the spec's name, as its JSON gives it.
func (s *Spec) Name() string { return s.moov.Name }

// Defines reports whether the spec defines data element n.
func (s *Spec) Defines(n int) bool {
	_, ok := s.moov.Fields[n]
	return n > 1 && ok
}

// Description returns the spec's description of data element n
// ("Retrieval reference number"), or "" if it defines none.
func (s *Spec) Description(n int) string {
	f, ok := s.moov.Fields[n]
	if !ok {
		return ""
	}
	return f.Spec().Description
}

// Fields returns the data elements the spec defines, in ascending order.
func (s *Spec) Fields() []int {
	ns := make([]int, 0, len(s.moov.Fields))
	for n := range s.moov.Fields {
		if n > 1 {
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	return ns
}

// MessageSpec returns the underlying moov-io/iso8583 spec, for tools built on
// that library. It must not be modified.
func (s *Spec) MessageSpec() *iso8583.MessageSpec { return s.moov }
