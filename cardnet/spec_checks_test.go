package cardnet_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/internal/syncbuf"
)

// Specs under which the gateway cannot carry corebank's
// traffic: ParseRequest reads these mandatory elements at the standard's
// lengths (DE22 3, DE37 12, DE41 8, DE42 15, DE43 40, DE70 3, DE90 42), and
// the MTI and STAN must keep their leading zeros. Each must be refused at
// load, naming the field, rather than start a gateway that refuses (30) or
// drops every message.
func TestLoadSpecRefusesWhatTheGatewayCannotRead(t *testing.T) {
	for name, raw := range map[string][]byte{
		"DE22 of 12 (1993 layout)": editSpec(t, func(f map[string]map[string]any) { f["22"]["length"] = 12 }),
		"DE37 of 10":               editSpec(t, func(f map[string]map[string]any) { f["37"]["length"] = 10 }),
		"DE41 of 16":               editSpec(t, func(f map[string]map[string]any) { f["41"]["length"] = 16 }),
		"DE42 LLVAR":               editSpec(t, func(f map[string]map[string]any) { f["42"]["prefix"] = "ASCII.LL" }),
		"DE43 of 99 (LLVAR)": editSpec(t, func(f map[string]map[string]any) {
			f["43"]["length"] = 99
			f["43"]["prefix"] = "ASCII.LL"
		}),
		"DE70 of 4":  editSpec(t, func(f map[string]map[string]any) { f["70"]["length"] = 4 }),
		"DE90 of 35": editSpec(t, func(f map[string]map[string]any) { f["90"]["length"] = 35 }),
		"MTI Numeric": editSpec(t, func(f map[string]map[string]any) {
			f["0"]["type"] = "Numeric"
			f["0"]["padding"] = map[string]any{"type": "Left", "pad": "0"}
		}),
		"DE11 Numeric, no padding": editSpec(t, func(f map[string]map[string]any) { f["11"]["type"] = "Numeric" }),
		// moov's Spec87ASCII layout: standard 64-bit-bitmap traffic misread.
		"bitmap of 16 bytes": editSpec(t, func(f map[string]map[string]any) { f["1"]["length"] = 16 }),
	} {
		_, err := cardnet.LoadSpec(bytes.NewReader(raw))
		if err == nil || !strings.Contains(err.Error(), "field ") {
			t.Errorf("%s: LoadSpec = %v, want an error naming the field", name, err)
		}
	}
}

// Malformed spec files are refused by LoadSpec with an error, never a
// panic (a crash at start with a stack trace instead of "field 1: ...").
// A few odd ones that still carry standard traffic unchanged (the probe
// round-trips them) may load.
func TestMalformedSpecIsAnErrorNotAPanic(t *testing.T) {
	for name, tc := range map[string]struct {
		raw []byte
		ok  bool // may load
	}{
		"bitmap of -8 bytes":         {raw: editSpec(t, func(f map[string]map[string]any) { f["1"]["length"] = -8 })},
		"DE2 of -1":                  {raw: editSpec(t, func(f map[string]map[string]any) { f["2"]["length"] = -1 })},
		"DE3 no type":                {raw: editSpec(t, func(f map[string]map[string]any) { delete(f["3"], "type") })},
		"DE3 no prefix":              {raw: editSpec(t, func(f map[string]map[string]any) { delete(f["3"], "prefix") })},
		"field 1 no enc":             {raw: editSpec(t, func(f map[string]map[string]any) { delete(f["1"], "enc") })},
		"DE3 Composite empty":        {raw: editSpec(t, func(f map[string]map[string]any) { f["3"]["type"] = "Composite" })},
		"DE3 Bitmap":                 {raw: editSpec(t, func(f map[string]map[string]any) { f["3"]["type"] = "Bitmap" })},
		"key not a number":           {raw: []byte(`{"name":"x","fields":{"zero":{"type":"String","length":4,"enc":"ASCII","prefix":"ASCII.Fixed"}}}`)},
		"fields null":                {raw: []byte(`{"name":"x","fields":null}`)},
		"MTI Bitmap":                 {raw: editSpec(t, func(f map[string]map[string]any) { f["0"]["type"] = "Bitmap" }), ok: true},
		"field null, then as before": {raw: editSpecRaw(t, `"3": null`), ok: true},
		"bitmap padding": {raw: editSpec(t, func(f map[string]map[string]any) {
			f["1"]["padding"] = map[string]any{"type": "Left", "pad": "00"}
		}), ok: true},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: LoadSpec panicked: %v", name, r)
				}
			}()
			s, err := cardnet.LoadSpec(bytes.NewReader(tc.raw))
			switch {
			case err == nil && !tc.ok:
				t.Errorf("%s: LoadSpec accepted it", name)
			case err == nil:
				// Loaded: it must read the standard's own bytes.
				if m, err := s.Unpack(auth0100); err != nil || m.Get(11) != "000123" {
					t.Errorf("%s: loaded, but the standard 0100 unpacks to %v, %v", name, m, err)
				}
			}
		}()
	}
}

func editSpecRaw(t *testing.T, field string) []byte {
	t.Helper()
	b := cardnet.DefaultSpecJSON()
	i := bytes.Index(b, []byte(`"fields": {`))
	if i < 0 {
		t.Fatal("no fields")
	}
	i += len(`"fields": {`)
	return []byte(fmt.Sprintf("%s%s,%s", b[:i], field, b[i:]))
}

// docs/iso8583.md: elements other than codes, amounts, dates and ids are
// shown "by its length only ... since a network may put anything there";
// ascii.Quote exists to keep a value with 12 or more digits out of errors.
// A malformed DE54 entry is quoted whole in the FieldError, which the
// Server logs ("cardnet: request refused").
func TestMalformedDE54ErrorHidesTheValue(t *testing.T) {
	m := MustMessage(t, authRequest("000001", "RRN000000001"))
	m.Set(54, "4111111111111111XXXX") // a card number where the entry should be
	_, err := cardnet.ParseRequest(m)
	if err == nil {
		t.Fatal("ParseRequest accepted it")
	}
	if strings.Contains(err.Error(), "4111111111111111") {
		t.Errorf("the error carries the full card number: %v", err)
	}
}

// A network that packs the PAN as BCD bytes, described with a Binary DE2
// (LoadSpec accepts it). The gateway cannot use such a PAN and answers 30;
// the message dump it logs must not mask it as characters: the last four
// bytes carry the last eight digits.
func TestBinaryPANIsMaskedWhole(t *testing.T) {
	raw := editSpec(t, func(f map[string]map[string]any) {
		f["2"] = map[string]any{"type": "Binary", "length": 19, "description": "Primary account number", "enc": "Binary", "prefix": "Binary.LL"}
	})
	spec, err := cardnet.LoadSpec(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	const pan = "4599991234567890" // digits 9-12 are "3456"
	packed, _ := hex.DecodeString(pan)

	d := MustMessage(t, authRequest("000001", "RRN000000001"))
	m := spec.NewMessage(d.MTI())
	for _, n := range d.Fields() {
		m.Set(n, d.Get(n))
	}
	m.Set(2, string(packed))
	body := MustPack(t, m)

	logs := new(syncbuf.Buffer)
	log := slog.New(slog.NewJSONHandler(logs, nil))
	addr := StartServer(t, &cardnet.Server{Handler: new(approver), Spec: spec, Log: log, Deadline: 5 * time.Second})
	nc := RawConn(t, addr)
	nc.Write(Frame(body))
	resp, err := spec.Unpack(ReadFrame(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get(39) != string(cardnet.FormatError) || !strings.Contains(logs.String(), "request refused") {
		t.Errorf("answered %s, want 30 and the refusal logged; log: %s", resp.Get(39), logs.String())
	}
	// The dump shows the last four bytes: 0x34 0x56 0x78 0x90, i.e. "4Vx\x90"
	// (JSON: "4Vx\ufffd"), the digits 3456 7890.
	for _, dump := range []string{logs.String(), m.String()} {
		if strings.Contains(dump, "4Vx") {
			t.Errorf("the dump shows PAN digits 9 to 16 (bytes 34 56 78 90): %s", dump)
		}
	}
}

// A network whose DE32 (acquiring institution id) is fixed n 11, zero-filled
// (as its DE90 carries it: "both zero-filled on the left", docs/iso8583.md).
// ParseRequest reads DE32 as 1 to 11 digits, and the gateway echoes it as
// received: the load-time probe tries it at its fixed length.
func TestFixedDE32SpecLoads(t *testing.T) {
	for name, edit := range map[string]func(f map[string]map[string]any){
		"fixed 11, no padding": func(f map[string]map[string]any) {
			f["32"]["prefix"] = "ASCII.Fixed"
		},
		"fixed 11, zero-padded": func(f map[string]map[string]any) {
			f["32"]["prefix"] = "ASCII.Fixed"
			f["32"]["padding"] = map[string]any{"type": "Left", "pad": "0"}
		},
	} {
		raw := editSpec(t, edit)
		s, err := cardnet.LoadSpec(bytes.NewReader(raw))
		if err != nil {
			t.Errorf("%s: LoadSpec: %v", name, err)
			continue
		}
		// The network's own 0100 with an 11-digit DE32 reads and is answered.
		m := s.NewMessage("0100")
		d := MustMessage(t, authRequest("000001", "RRN000000001"))
		for _, n := range d.Fields() {
			m.Set(n, d.Get(n))
		}
		m.Set(32, "00000123456")
		b, err := m.Pack()
		if err != nil {
			t.Fatalf("%s: pack: %v", name, err)
		}
		back, err := s.Unpack(b)
		if err != nil {
			t.Fatalf("%s: unpack: %v", name, err)
		}
		if _, err := cardnet.ParseRequest(back); err != nil {
			t.Errorf("%s: ParseRequest: %v", name, err)
		}
	}
}
