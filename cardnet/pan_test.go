package cardnet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/corebank/corebank/cardnet"
)

func TestPANMasked(t *testing.T) {
	for pan, want := range map[cardnet.PAN]string{
		"4111111111111111":    "411111******1111",
		"5555555555554444333": "555555*********4333",
		"411111111111":        "********1111",
		"4111111":             "*******",
		"":                    "",
	} {
		if got := pan.Masked(); got != want {
			t.Errorf("Masked(%d digits) = %q, want %q", len(pan), got, want)
		}
	}
}

func TestSecretsStayOutOfLogsAndEncodings(t *testing.T) {
	// A CVC2 whose digits appear nowhere else in the message.
	m := MustUnpack(t, auth0100)
	m.Set(48, "9203987")
	r := MustParse(t, m)
	if r.CVC2 != "987" {
		t.Fatalf("CVC2 not parsed: %q", string(r.CVC2))
	}

	var logged bytes.Buffer
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{ReplaceAttr: noTime}))
	log.Info("request", "req", r, "msg", m, "pan", r.PAN, "cvc", r.CVC2)
	encoded, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"slog":  logged.String(),
		"json":  string(encoded),
		"%v":    fmt.Sprintf("%v", r),
		"%+v":   fmt.Sprintf("%+v", *r),
		"%#v":   fmt.Sprintf("%#v", *r),
		"%s":    fmt.Sprintf("%s", m),
		"error": fmt.Sprint(r.PAN, r.CVC2),
	} {
		if strings.Contains(out, "4111111111111111") {
			t.Errorf("%s output shows the PAN: %s", name, out)
		}
		if strings.Contains(out, "987") {
			t.Errorf("%s output shows the CVC2: %s", name, out)
		}
	}
	if !strings.Contains(logged.String(), "411111******1111") {
		t.Errorf("log lacks the masked PAN: %s", logged.String())
	}
}

// A PAN or CVC prints masked under every fmt verb, not only those that call
// String.
func TestPANAndCVCNeverFormatInClear(t *testing.T) {
	const pan, cvc = "4599993523778640", "987"
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%d", "%c", "%U", "%08d", "%#v", "%+v", "%T %v"} {
		if got := fmt.Sprintf(verb, cardnet.PAN(pan)); strings.Contains(got, pan) || strings.Contains(got, "3523") {
			t.Errorf("Sprintf(%s, PAN) = %s", verb, got)
		}
		if got := fmt.Sprintf(verb, cardnet.CVC(cvc)); strings.Contains(got, cvc) {
			t.Errorf("Sprintf(%s, CVC) = %s", verb, got)
		}
	}
}

// A message's dump (String, and LogValue for slog) shows only the elements
// that cannot carry card data as sent: free text with long digit runs
// hidden, anything else by its length.
func TestMessageDumpHoldsNoCardData(t *testing.T) {
	const pan, cvv2 = "4599993523778640", "987"
	m := cardnet.DefaultSpec().NewMessage("0100")
	m.Set(2, pan)
	m.Set(4, "000000001234")
	m.Set(11, "000123")
	m.Set(43, fmt.Sprintf("%-25s%-13sGB", pan, "LONDON"))
	m.Set(48, "CVC"+cvv2)
	m.Set(54, pan)
	m.Set(62, pan)
	m.Set(102, pan)
	m.Set(126, "00000000000000000000"+cvv2+"0")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "msg", m)
	for what, dump := range map[string]string{"String": m.String(), "LogValue": logs.String()} {
		for _, secret := range []string{pan, pan[6:12], "0" + cvv2 + "0", "CVC" + cvv2} {
			if strings.Contains(dump, secret) {
				t.Errorf("%s holds %q: %s", what, secret, dump)
			}
		}
		for _, want := range []string{"459999******8640", "000000001234", "000123", "LONDON", "[16 characters]", "[24 characters]", "[redacted]"} {
			if !strings.Contains(dump, want) {
				t.Errorf("%s lacks %q: %s", what, want, dump)
			}
		}
	}
}
