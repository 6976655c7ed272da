package rpc_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/testcert"
	"github.com/corebank/corebank/rpc"
)

// Behind CallerFromCertificate the caller is the verified client
// certificate's: a request without one is unauthenticated, a header naming
// another caller is forbidden, and the policy decides on the certificate's
// name. A certificate from another authority does not get through the
// handshake.
func TestCallerFromCertificate(t *testing.T) {
	ca := testcert.NewCA(t, "corebank test CA")
	r := rpc.NewRouter()
	rpc.Handle(r, "card", "reveal", func(ctx context.Context, req struct{}) (*string, error) {
		s := "revealed to " + rpc.CallerFrom(ctx)
		return &s, nil
	})
	srv := httptest.NewUnstartedServer(rpc.NewHTTPHandler(rpc.Chain(r.Service(), rpc.Policy(rpc.Grants{"card/reveal": {"api"}})), rpc.CallerFromCertificate()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Pair(t, "card")}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	client := func(name string, from *testcert.CA) rpc.Service {
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if name != "" {
			cfg.Certificates = []tls.Certificate{from.Pair(t, name)}
		}
		return rpc.NewHTTPClient(url, rpc.HTTPClient(cfg))
	}
	call := func(s rpc.Service, claim string) (string, error) {
		if claim != "" {
			s = s.Filter(rpc.From(claim))
		}
		got, err := rpc.Call[string](context.Background(), s, "card", "reveal", struct{}{})
		if err != nil {
			return "", err
		}
		return *got, nil
	}

	if got, err := call(client("api", ca), ""); err != nil || got != "revealed to api" {
		t.Errorf("api's certificate, no header: %q, %v", got, err)
	}
	if got, err := call(client("api", ca), "api"); err != nil || got != "revealed to api" {
		t.Errorf("api's certificate, header api: %q, %v", got, err)
	}
	for _, c := range []struct {
		name, claim string
		want        errors.Code
	}{
		{"", "api", errors.Unauthenticated},          // no certificate: the header alone is not enough
		{"cardnet", "api", errors.Forbidden},         // a certificate claiming to be another
		{"cardnet", "", errors.Forbidden},            // the policy, on the certificate's name
		{"not a caller", "", errors.Unauthenticated}, // a name no caller has
	} {
		if _, err := call(client(c.name, ca), c.claim); errors.CodeOf(err) != c.want {
			t.Errorf("certificate %q claiming %q: %v, want %s", c.name, c.claim, err, c.want)
		}
	}
	other := testcert.NewCA(t, "another CA")
	if got, err := call(client("api", other), "api"); err == nil {
		t.Errorf("a certificate from another authority got %q", got)
	}
	// Plain HTTP to the TLS port is no way round it either.
	rsp, err := http.Post(strings.Replace(url, "https", "http", 1)+"/rpc/card/reveal", "application/json", strings.NewReader("{}"))
	if err == nil {
		rsp.Body.Close()
		if rsp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to the TLS port was answered 200")
		}
	}
}
