package authorization_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/corebank/corebank/authorization"
)

// A whole Request logged through a JSON handler (the scale-out shape's)
// shows the PAN masked and neither CVC nor expiry, though encoding/json
// carries them whole for the RPC wire.
func TestRequestLogsMasked(t *testing.T) {
	const pan = "4571736012345678"
	orig := authorization.NetworkID{Acquirer: "123456", STAN: "000001", RRN: "RRN000000001", TransmissionTime: "0115090000"}
	req := authorization.Request{
		Kind: authorization.KindIncremental, Network: orig, PAN: pan, Expiry: "3012", CVC: "987",
		Amount: 1234, Currency: "GBP", MCC: "7011", Channel: "ecommerce", Original: &orig,
	}
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("decided", "req", req, "ptr", &req)
		out := buf.String()
		for _, secret := range []string{pan, "987", "3012"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: %q logged: %s", name, secret, out)
			}
		}
		if !strings.Contains(out, "457173******5678") || !strings.Contains(out, "1234") || !strings.Contains(out, orig.Key()) {
			t.Errorf("%s: the masked PAN, the amount or the ids missing: %s", name, out)
		}
	}
}
