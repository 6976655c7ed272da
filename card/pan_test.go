package card_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
)

func TestLuhn(t *testing.T) {
	// Well-known test numbers of the card schemes.
	for _, s := range []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"} {
		if !card.LuhnValid(s) {
			t.Errorf("LuhnValid(%s) = false, want true", s)
		}
		if got := card.LuhnDigit(s[:len(s)-1]); got != s[len(s)-1] {
			t.Errorf("LuhnDigit(%s) = %c, want %c", s[:len(s)-1], got, s[len(s)-1])
		}
	}
	for _, s := range []string{"4111111111111112", "5555555555554443", "", "4", "41111111111a1111"} {
		if card.LuhnValid(s) {
			t.Errorf("LuhnValid(%q) = true, want false", s)
		}
	}
}

func TestParsePAN(t *testing.T) {
	if p, err := card.ParsePAN("4111111111111111"); err != nil || string(p) != "4111111111111111" {
		t.Fatalf("ParsePAN(valid) = %q, %v", string(p), err)
	}
	for _, s := range []string{"", "41111111111", "41111111111111111111", "4111-1111-1111-1111", "4111111111111112"} {
		_, err := card.ParsePAN(s)
		wantCode(t, err, errors.BadRequest)
		if len(s) > 10 && strings.Contains(err.Error(), s) {
			t.Errorf("ParsePAN error %q contains the number", err)
		}
	}
}

const fullPAN = "4571736012345678"

func TestPANIsMaskedEverywhere(t *testing.T) {
	p := card.PAN(fullPAN)
	const masked = "457173******5678"
	if p.Masked() != masked || card.Mask(fullPAN) != masked {
		t.Fatalf("Masked = %q, want %q", p.Masked(), masked)
	}
	if got := card.Mask("4111111111111111111"); got != "411111*********1111" {
		t.Errorf("Mask(19 digits) = %q", got)
	}
	if got := card.Mask("123456789012"); got != "************" {
		t.Errorf("Mask(12 digits) = %q, want all masked", got)
	}
	if p.First6() != "457173" || p.Last4() != "5678" {
		t.Errorf("First6, Last4 = %s, %s", p.First6(), p.Last4())
	}

	var outputs []string
	for _, f := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%20s", "%-30v"} {
		outputs = append(outputs, fmt.Sprintf(f, p))
	}
	outputs = append(outputs, fmt.Sprint(p), fmt.Sprintln(p), p.String(), fmt.Sprintf("%v", struct{ P card.PAN }{p}), fmt.Sprintf("%+v", []card.PAN{p}))
	j, err := json.Marshal(map[string]any{"pan": p, "struct": struct{ P card.PAN }{p}})
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j))
	outputs = append(outputs, logged(func(l *slog.Logger) { l.Info("pan", "pan", p, "nested", slog.GroupValue(slog.Any("p", p))) })...)
	for _, out := range outputs {
		if strings.Contains(out, fullPAN) {
			t.Errorf("output %q contains the full PAN", out)
		}
		if strings.Contains(out, fmt.Sprintf("%x", fullPAN)) {
			t.Errorf("output %q contains the PAN in hex", out)
		}
	}
	if !strings.Contains(fmt.Sprint(p), masked) || !strings.Contains(string(j), masked) {
		t.Errorf("masked form missing from %q / %s", fmt.Sprint(p), j)
	}
}

func TestDetailsPrintMasked(t *testing.T) {
	d := card.Details{CardID: "card_1", PAN: fullPAN, ExpiryMonth: 1, ExpiryYear: 2034, CVC: "987"}
	outs := []string{fmt.Sprint(d), fmt.Sprintf("%+v", d), fmt.Sprintf("%#v", d), fmt.Sprintf("%v", &d), fmt.Sprintf("%s", d)}
	outs = append(outs, logged(func(l *slog.Logger) { l.Info("details", "d", d) })...)
	for _, out := range outs {
		if strings.Contains(out, fullPAN) || strings.Contains(out, "987") {
			t.Errorf("output %q shows the PAN or CVC", out)
		}
		if !strings.Contains(out, "457173") {
			t.Errorf("output %q lacks the masked number", out)
		}
	}
	// The wire carries the details whole: that is Reveal's purpose.
	j, _ := json.Marshal(d)
	if !strings.Contains(string(j), fullPAN) || !strings.Contains(string(j), `"cvc":"987"`) {
		t.Errorf("JSON %s lacks the details", j)
	}
	r := card.LookupRequest{PAN: fullPAN}
	v := card.VerifyCVCRequest{CardID: "card_1", CVC: "987"}
	outs = []string{fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprint(v), fmt.Sprintf("%#v", v)}
	outs = append(outs, logged(func(l *slog.Logger) { l.Info("req", "lookup", r, "verify", v) })...)
	for _, out := range outs {
		if strings.Contains(out, fullPAN) || strings.Contains(out, "987") {
			t.Errorf("output %q shows the PAN or CVC", out)
		}
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	cfg := testConfig(t, newClock(epoch))
	secrets := [][]byte{cfg.HashKey, cfg.Keyring.Keys["k1"], cfg.CVK.A, cfg.CVK.B}
	outs := []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%x", cfg.HashKey)}
	j, err := json.Marshal(cfg.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	outs = append(outs, logged(func(l *slog.Logger) { l.Info("cfg", "cfg", cfg, "key", cfg.HashKey) })...)
	for _, out := range outs {
		for _, s := range secrets {
			for _, enc := range []string{fmt.Sprintf("%x", []byte(s)), fmt.Sprint([]byte(s)), string(s)} {
				if strings.Contains(out, enc) {
					t.Errorf("output %q shows a key", out)
				}
			}
		}
	}
	if _, err := card.ParseSecret("zz"); errors.CodeOf(err) != errors.BadRequest {
		t.Errorf("ParseSecret(zz) error = %v, want BadRequest", err)
	}
}

// logged returns what l wrote through a text and a JSON handler.
func logged(f func(l *slog.Logger)) []string {
	// No time: its digits could hold the CVC being searched for.
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	var out []string
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, noTime) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, noTime) },
	} {
		var b bytes.Buffer
		f(slog.New(h(&b)))
		out = append(out, b.String())
	}
	return out
}
