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
