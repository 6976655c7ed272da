package cardnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

func TestDefaultSpec(t *testing.T) {
	s := cardnet.DefaultSpec()
	fields := s.Fields()
	// ISO 8583:1987 defines data elements 2 to 128; 65 is the presence bit
	// of a third bitmap, never a data element.
	if len(fields) != 126 || fields[0] != 2 || fields[len(fields)-1] != 128 || s.Defines(65) {
		t.Errorf("Fields = %v", fields)
	}
	if got := s.Description(37); got != "Retrieval reference number" {
		t.Errorf("Description(37) = %q", got)
	}
}

// editSpec returns the default spec's JSON with edit applied to its fields.
func editSpec(t *testing.T, edit func(fields map[string]map[string]any)) []byte {
	t.Helper()
	var doc struct {
		Name   string                    `json:"name"`
		Fields map[string]map[string]any `json:"fields"`
	}
	if err := json.Unmarshal(cardnet.DefaultSpecJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc.Fields)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadSpecWithBinaryBitmap(t *testing.T) {
	// A network whose bitmap travels as 8 binary bytes per 64 bits: the
	// same spec file with field 1 changed, no code.
	raw := editSpec(t, func(f map[string]map[string]any) {
		f["1"]["enc"] = "Binary"
		f["1"]["prefix"] = "Binary.Fixed"
	})
	spec, err := cardnet.LoadSpec(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// The 0800 echo laid out by hand: primary bitmap 82 20 00.., secondary
	// 04 00 .., as bytes.
	want := []byte("0800")
	want = append(want, 0x82, 0x20, 0, 0, 0, 0, 0, 0)
	want = append(want, 0x04, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, "0315143005"+"000001"+"301"...)

	m, err := spec.Unpack(want)
	if err != nil {
		t.Fatal(err)
	}
	WantFields(t, m, map[int]string{7: "0315143005", 11: "000001", 70: "301"})
	if got := MustPack(t, m); !bytes.Equal(got, want) {
		t.Errorf("Pack = %x, want %x", got, want)
	}
	m.Unset(70)
	if got := MustPack(t, m); !bytes.Equal(got[4:12], []byte{0x02, 0x20, 0, 0, 0, 0, 0, 0}) || len(got) != 4+8+16 {
		t.Errorf("without DE70: Pack = %x, want a primary bitmap only", got)
	}
}

func TestLoadSpecErrors(t *testing.T) {
	for name, raw := range map[string][]byte{
		"not JSON":               []byte("{"),
		"no fields":              []byte(`{"name":"x","fields":{}}`),
		"unknown encoding":       editSpec(t, func(f map[string]map[string]any) { f["4"]["enc"] = "Morse" }),
		"MTI of 3":               editSpec(t, func(f map[string]map[string]any) { f["0"]["length"] = 3 }),
		"MTI variable":           editSpec(t, func(f map[string]map[string]any) { f["0"]["prefix"] = "ASCII.LL" }),
		"no bitmap":              editSpec(t, func(f map[string]map[string]any) { delete(f, "1") }),
		"bitmap not a bitmap":    editSpec(t, func(f map[string]map[string]any) { f["1"]["type"] = "String" }),
		"lacks the RRN":          editSpec(t, func(f map[string]map[string]any) { delete(f, "37") }),
		"field on bit 65":        editSpec(t, func(f map[string]map[string]any) { f["65"] = f["66"] }),
		"bitmap too short":       editSpec(t, func(f map[string]map[string]any) { f["1"]["disableAutoExpand"] = true }),
		"DE38 of 8":              editSpec(t, func(f map[string]map[string]any) { f["38"]["length"] = 8 }),
		"DE11 of 4":              editSpec(t, func(f map[string]map[string]any) { f["11"]["length"] = 4 }),
		"DE39 variable":          editSpec(t, func(f map[string]map[string]any) { f["39"]["prefix"] = "ASCII.LL" }),
		"larger than a megabyte": append([]byte(`{"name":"`), strings.Repeat("x", 1<<20)...),
	} {
		if _, err := cardnet.LoadSpec(bytes.NewReader(raw)); err == nil {
			t.Errorf("%s: LoadSpec succeeded, want an error", name)
		}
	}
}

func TestDefaultSpecJSONIsACopy(t *testing.T) {
	b := cardnet.DefaultSpecJSON()
	b[0] = 'X'
	if cardnet.DefaultSpecJSON()[0] == 'X' {
		t.Error("DefaultSpecJSON returns the embedded bytes themselves")
	}
}

// A loaded spec under which the gateway's approval cannot be packed (DE38
// numeric; approval codes are alphanumeric): the approval is undone and
// answered per the timeout policy, never 96 with the money held. (A code
// that happens to be all digits packs, and is answered 00 with its money
// held.)
func TestUnpackableApprovalIsUndone(t *testing.T) {
	raw := editSpec(t, func(f map[string]map[string]any) { f["38"]["type"] = "Numeric" })
	spec, err := cardnet.LoadSpec(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("LoadSpec: %v", err)
	}
	b := newBank(t, bankOptions{})
	addr := StartServer(t, &cardnet.Server{Handler: b.gw, Spec: spec, Deadline: 5 * time.Second})
	c, err := (&cardnet.Dialer{Spec: spec}).Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := b.holder(100_00, card.Controls{})
	var held int64
	undone := 0
	for range 3 {
		m, err := b.purchase(h, 12_50).Message(spec)
		if err != nil {
			t.Fatal(err)
		}
		switch resp := MustSend(t, c, m); resp.Get(39) {
		case string(cardnet.IssuerUnavailable):
			undone++
		case string(cardnet.Approved):
			held += 12_50
		default:
			t.Fatalf("answered %s, want 91 (or 00 for an all-digit code)", resp.Get(39))
		}
	}
	if undone == 0 {
		t.Fatal("every approval packed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.gw.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	b.wantBalance(h.account, 100_00, held)
}
