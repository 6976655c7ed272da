package cardnet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
)

// seedMessages are valid messages of each kind, the starting points of both
// fuzz targets.
func seedMessages(tb testing.TB) [][]byte {
	seeds := [][]byte{auth0100, echo0800, reversal0400}
	fin := authRequest("000002", "RRN000000002")
	fin.MTI, fin.ProcessingCode = cardnet.MTIFinancialRequest, "090000"
	fin.BillingAmount, fin.BillingCurrency = 1490, "EUR"
	fin.AdditionalAmounts = []cardnet.AdditionalAmount{{AccountType: "00", AmountType: "40", Currency: "GBP", Amount: 2000}}
	advice := authRequest("000003", "RRN000000003")
	advice.MTI, advice.ResponseCode, advice.AuthID = "0121", "00", "STNDIN"
	for _, r := range []*cardnet.Request{fin, advice} {
		seeds = append(seeds, MustPack(tb, MustMessage(tb, r)))
	}
	return seeds
}

// FuzzUnpack feeds arbitrary bytes to the decoder and the request parser:
// every failure must be an error value, and whatever decodes must survive a
// pack and unpack unchanged.
func FuzzUnpack(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(s)
	}
	f.Add([]byte("0100"))
	f.Add(hexASCII("0800", "8220000000000000", "8400000000000000"))
	spec := cardnet.DefaultSpec()

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := spec.Unpack(b)
		if err != nil {
			var ue *cardnet.UnpackError
			if !errors.As(err, &ue) {
				t.Fatalf("Unpack error %T %v, want *UnpackError", err, err)
			}
			if errors.Is(err, cardnet.ErrDecoderPanicked) {
				t.Fatalf("decoder panicked: %v", err)
			}
			if ue.Partial != nil {
				if _, err := cardnet.Respond(ue.Partial, cardnet.Answer{Code: cardnet.FormatError}); err != nil && isRequestMTI(ue.Partial.MTI()) {
					t.Fatalf("cannot answer the partial message: %v", err)
				}
			}
			return
		}
		packed, err := m.Pack()
		if err != nil {
			t.Fatalf("decoded message does not pack: %v\n%v", err, m)
		}
		again, err := spec.Unpack(packed)
		if err != nil {
			t.Fatalf("packed message does not decode: %v\n%q", err, packed)
		}
		if again.MTI() != m.MTI() || !reflect.DeepEqual(again.Fields(), m.Fields()) {
			t.Fatalf("round trip changed the message:\n%v\n%v", m, again)
		}
		for _, n := range m.Fields() {
			if again.Get(n) != m.Get(n) {
				t.Fatalf("round trip changed DE%d: %q to %q", n, m.Get(n), again.Get(n))
			}
		}
		r, err := cardnet.ParseRequest(m)
		if err != nil {
			var fe *cardnet.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseRequest error %T %v, want *FieldError", err, err)
			}
			return
		}
		// A valid request can be answered, and rebuilt from its typed view.
		if _, err := cardnet.Respond(m, cardnet.Answer{Code: cardnet.DoNotHonour}); err != nil {
			t.Fatalf("Respond to a valid request: %v", err)
		}
		if rebuilt, err := r.Message(spec); err == nil {
			r2, err := cardnet.ParseRequest(rebuilt)
			if err != nil || r2.PAN != r.PAN || r2.STAN != r.STAN || r2.RRN != r.RRN || r2.CVC2 != r.CVC2 {
				t.Fatalf("rebuilt request differs: %v, %v", r2, err)
			}
		}
	})
}

func isRequestMTI(mti string) bool {
	_, err := cardnet.ResponseMTI(mti)
	return err == nil
}

// FuzzFrame sends arbitrary bytes down a connection to a real server: the
// server must answer with well-formed responses or close the connection,
// never crash or hang, and go on serving its other connections.
func FuzzFrame(f *testing.F) {
	for _, s := range seedMessages(f) {
		f.Add(Frame(s))
	}
	f.Add(append(Frame(auth0100), Frame(echo0800)...))
	f.Add(append(Frame(echo0800), 0x00))                                                // half a header
	f.Add(append(Frame(echo0800), 0x00, 0x40, '0', '8'))                                // half a message
	f.Add(append(Frame(nil), Frame(echo0800)...))                                       // keep-alive first
	f.Add(Frame(append(bytes.Clone(auth0100), '!')))                                    // trailing byte
	f.Add(Frame(hexASCII("0100", "72ZZ448108E18000")))                                  // bad bitmap
	f.Add(Frame([]byte("hello")))                                                       // garbage
	f.Add([]byte{0xFF, 0xFF})                                                           // huge length
	f.Add(Frame(bytes.Replace(bytes.Clone(auth0100), []byte("826"), []byte("999"), 1))) // currency

	// One server for all inputs, and a client on its own connection that
	// checks the server still serves.
	addr := StartServer(f, &cardnet.Server{Handler: &approver{}, Workers: 4, MaxInFlight: 4})
	health := MustDial(f, addr)
	spec := cardnet.DefaultSpec()

	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// Write in a goroutine: the server may stop reading (backpressure)
		// or close before taking it all.
		go func() {
			nc.Write(in)
			nc.(*net.TCPConn).CloseWrite()
		}()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			body, err := readFrame(nc)
			if errors.Is(err, io.EOF) || isConnError(err) {
				break // the server closed the connection
			}
			if err != nil {
				t.Fatalf("reading the server's answers: %v", err)
			}
			resp, err := spec.Unpack(body)
			if err != nil {
				t.Fatalf("server sent an undecodable message %q: %v", body, err)
			}
			if _, err := cardnet.ResponseMTI(resp.MTI()); err == nil || len(resp.Get(39)) != 2 {
				t.Fatalf("server sent %v, want a response with DE39", resp)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := health.Send(ctx, networkRequest("999999", cardnet.NetworkEcho))
		if err != nil || resp.Get(39) != "00" {
			t.Fatalf("server no longer answers echo on another connection: %v, %v", resp, err)
		}
	})
}

// isConnError reports a connection reset and the like: the server closed
// with our bytes still unread, which is a close as well.
func isConnError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}
