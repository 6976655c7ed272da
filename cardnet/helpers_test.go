package cardnet_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
)

// MustParse parses m as a request or fails the test.
func MustParse(tb testing.TB, m *cardnet.Message) *cardnet.Request {
	tb.Helper()
	r, err := cardnet.ParseRequest(m)
	if err != nil {
		tb.Fatalf("ParseRequest(%v): %v", m, err)
	}
	return r
}

// MustUnpack unpacks b with the default spec or fails the test.
func MustUnpack(tb testing.TB, b []byte) *cardnet.Message {
	tb.Helper()
	m, err := cardnet.DefaultSpec().Unpack(b)
	if err != nil {
		tb.Fatalf("Unpack(%q): %v", b, err)
	}
	return m
}

// MustPack packs m or fails the test.
func MustPack(tb testing.TB, m *cardnet.Message) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatalf("Pack(%v): %v", m, err)
	}
	return b
}

// authRequest returns a valid 0100 purchase of 12.50 GBP.
func authRequest(stan, rrn string) *cardnet.Request {
	return &cardnet.Request{
		MTI:              cardnet.MTIAuthorizationRequest,
		PAN:              "4111111111111111",
		ProcessingCode:   "000000",
		Amount:           1250,
		Currency:         "GBP",
		TransmissionTime: cardnet.DateTime{Month: 3, Day: 15, Hour: 14, Minute: 30, Second: 5},
		STAN:             stan,
		LocalTime:        cardnet.DateTime{Month: 3, Day: 15, Hour: 14, Minute: 30, Second: 5},
		Expiry:           cardnet.Expiry{Year: 2027, Month: 12},
		MCC:              "5812",
		POSEntryMode:     "071",
		POSCondition:     "00",
		AcquirerID:       "123456",
		RRN:              rrn,
		TerminalID:       "TERM0001",
		MerchantID:       "MERCHANT0000001",
		Merchant:         cardnet.Merchant{Name: "OZONE COFFEE ROASTERS", City: "LONDON", Country: "GB"},
		CVC2:             "123",
	}
}

// MustMessage lays r out with the default spec or fails the test.
func MustMessage(tb testing.TB, r *cardnet.Request) *cardnet.Message {
	tb.Helper()
	m, err := r.Message(cardnet.DefaultSpec())
	if err != nil {
		tb.Fatalf("Message(%v): %v", r, err)
	}
	return m
}

// networkRequest returns an 0800 with network management code code.
func networkRequest(stan, code string) *cardnet.Message {
	m := cardnet.DefaultSpec().NewMessage(cardnet.MTINetworkRequest)
	m.Set(7, "0315143005")
	m.Set(11, stan)
	m.Set(70, code)
	return m
}

// approver is a Handler that approves every request with code A1B2C3 and
// records what it saw.
type approver struct {
	mu   sync.Mutex
	seen []*cardnet.Message
}

func (a *approver) Handle(ctx context.Context, req *cardnet.Message) *cardnet.Message {
	a.mu.Lock()
	a.seen = append(a.seen, req)
	a.mu.Unlock()
	resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3"})
	if err != nil {
		panic(err)
	}
	return resp
}

// StartServer serves srv on a loopback port until the test ends and returns
// its address. The cleanup checks that Serve ended with ErrServerClosed.
func StartServer(tb testing.TB, srv *cardnet.Server) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, cardnet.ErrServerClosed) {
			tb.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// MustDial connects a Client that is closed when the test ends.
func MustDial(tb testing.TB, addr string) *cardnet.Client {
	tb.Helper()
	c, err := cardnet.Dial(addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// MustSend sends m on c and returns the response, within 5 seconds.
func MustSend(tb testing.TB, c *cardnet.Client, m *cardnet.Message) *cardnet.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m)
	if err != nil {
		tb.Fatalf("Send(%v): %v", m, err)
	}
	return resp
}

// send sends m on c with a 5-second limit; for goroutines, which must not
// call t.Fatal.
func send(c *cardnet.Client, m *cardnet.Message) (*cardnet.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Send(ctx, m)
}

// readFrame reads one length-prefixed frame from r; for goroutines.
func readFrame(r io.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(h[:]))
	_, err := io.ReadFull(r, body)
	return body, err
}

// RawConn dials addr without a Client, for writing bytes by hand.
func RawConn(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return nc.(*net.TCPConn)
}

// Frame returns body behind its 2-byte big-endian length header, laid out
// by hand rather than by the package under test.
func Frame(body []byte) []byte {
	out := make([]byte, 2, 2+len(body))
	binary.BigEndian.PutUint16(out, uint16(len(body)))
	return append(out, body...)
}

// ReadFrame reads one length-prefixed frame from r, within 5 seconds.
func ReadFrame(tb testing.TB, nc net.Conn) []byte {
	tb.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer nc.SetReadDeadline(time.Time{})
	body, err := readFrame(nc)
	if err != nil {
		tb.Fatalf("read frame: %v", err)
	}
	return body
}

// ExpectClosed checks that the server closes nc within 5 seconds, after
// sending nothing more.
func ExpectClosed(tb testing.TB, nc net.Conn) {
	tb.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil {
		tb.Fatalf("connection not closed cleanly: %v (read %q)", err, b)
	}
	if len(b) != 0 {
		tb.Fatalf("server sent %q before closing, want nothing", b)
	}
}

// WantFields checks that m carries exactly the given data elements.
func WantFields(tb testing.TB, m *cardnet.Message, want map[int]string) {
	tb.Helper()
	for n, v := range want {
		if got, ok := m.Lookup(n); !ok || got != v {
			tb.Errorf("DE%d = %q (present %v), want %q", n, got, ok, v)
		}
	}
	for _, n := range m.Fields() {
		if _, ok := want[n]; !ok {
			tb.Errorf("unexpected DE%d = %q", n, m.Get(n))
		}
	}
}

// hexASCII joins parts: hand-written messages read better in pieces.
func hexASCII(parts ...string) []byte { return []byte(strings.Join(parts, "")) }

// handled hands msg to gw directly (no Server) and returns its response
// code, "none" when it gives no answer.
func handled(t *testing.T, gw *cardnet.Gateway, msg *cardnet.Message) string {
	t.Helper()
	resp := gw.Handle(context.Background(), msg)
	if resp == nil {
		return "none"
	}
	return resp.Get(39)
}

// waitLate waits, ten seconds at most, for gw's decisions that outlived
// their deadline and their reconciliation.
func waitLate(t *testing.T, gw *cardnet.Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
