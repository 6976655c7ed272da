package cardnet_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/cardnet"
)

// BenchmarkCodec measures the gateway's per-request codec work: decode an
// 0100, parse it, build the 0110 and encode it.
func BenchmarkCodec(b *testing.B) {
	spec := cardnet.DefaultSpec()
	b.ReportAllocs()
	for b.Loop() {
		m, err := spec.Unpack(auth0100)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cardnet.ParseRequest(m); err != nil {
			b.Fatal(err)
		}
		resp, err := cardnet.Respond(m, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := resp.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip measures one authorization over loopback TCP through
// the Server and Client, with a handler that approves at once.
func BenchmarkRoundTrip(b *testing.B) {
	approve := cardnet.HandlerFunc(func(ctx context.Context, req *cardnet.Message) *cardnet.Message {
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3"})
		if err != nil {
			panic(err)
		}
		return resp
	})
	addr := StartServer(b, &cardnet.Server{Handler: approve})
	c := MustDial(b, addr)
	m := MustMessage(b, authRequest("000001", "RRN000000001"))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
