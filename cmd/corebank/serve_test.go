package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/syncbuf"
	"github.com/corebank/corebank/internal/testcert"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store/storetest"
)

// TestMain lets a test run the corebank command itself in a child process:
// the test binary, re-executed with COREBANK_TEST_MAIN=1, is corebank.
func TestMain(m *testing.M) {
	if os.Getenv("COREBANK_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		defer stop()
		if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "corebank:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The scale-out shape: the ledger alone in its own process, on PostgreSQL,
// serving its methods over HTTP; a client in another process cannot tell it
// from the in-process ledger. SIGTERM stops it cleanly.
func TestServeLedgerOverHTTP(t *testing.T) {
	pg := storetest.Database(t)
	led := startServe(t, nil, "--service", "ledger", "--store", "postgres", "--postgres-url", pg, "--shutdown-grace", "1s")
	base := led.base

	ctx := rpc.WithCaller(context.Background(), callerAPI)
	l := &ledger.Client{RPC: rpc.NewHTTPClient(base, &http.Client{})}
	bank, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "bank", Currency: "GBP", Rule: ledger.RuleNone})
	if err != nil {
		t.Fatal(err)
	}
	cust, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "cust", Currency: "GBP", Rule: ledger.RuleLimit})
	if err != nil {
		t.Fatal(err)
	}
	req := ledger.TransferRequest{Key: "t1", Legs: []ledger.Leg{{AccountID: bank.ID, Amount: -500, Currency: "GBP"}, {AccountID: cust.ID, Amount: 500, Currency: "GBP"}}}
	first, err := l.Transfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Transfer(ctx, req)
	if err != nil || again.ID != first.ID {
		t.Errorf("retry over HTTP: %v, id %v vs %v", err, again, first.ID)
	}
	if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: "t2", Legs: []ledger.Leg{{AccountID: cust.ID, Amount: -501, Currency: "GBP"}, {AccountID: bank.ID, Amount: 501, Currency: "GBP"}}}); errors.CodeOf(err) != errors.InsufficientFunds {
		t.Errorf("overdraft over HTTP: %v, want insufficient_funds", err)
	}
	b, err := l.Balance(ctx, cust.ID, time.Time{})
	if err != nil || b.Posted != 500 || b.Available != 500 {
		t.Errorf("balance over HTTP: %+v, %v", b, err)
	}

	// Up for longer than its grace period: the grace runs from the
	// signal, so it still stops cleanly.
	time.Sleep(1500 * time.Millisecond)
	led.stop(t)
}

// served is a corebank serve process started by startServe.
type served struct {
	cmd    *exec.Cmd
	exited chan error
	base   string // http://addr
}

// startServe runs corebank serve with args and env in a child process, on a
// free HTTP address, and waits until it is ready. The test kills it at the
// end if it is still running.
func startServe(t *testing.T, env []string, args ...string) *served {
	t.Helper()
	addr := freeAddr(t)
	return startCorebank(t, env, addr, append([]string{"serve", "--http", addr, "--data", t.TempDir(), "--log-level", "warn"}, args...)...)
}

// startCorebank runs corebank with args (its HTTP server on addr) and env
// in a child process, and waits until it is ready.
func startCorebank(t *testing.T, env []string, addr string, args ...string) *served {
	t.Helper()
	return startCorebankTo(t, os.Stderr, env, addr, args...)
}

// startCorebankTo is startCorebank with the child's stderr going to stderr.
func startCorebankTo(t *testing.T, stderr io.Writer, env []string, addr string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "COREBANK_TEST_MAIN=1"), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, exited: make(chan error, 1), base: "http://" + addr}
	// With --tls-ca the process serves TLS: its readiness is asked over
	// HTTPS, trusting that authority (no client certificate needed).
	probe := http.DefaultClient
	for i, a := range args {
		if a == "--tls-ca" && i+1 < len(args) {
			ca, err := os.ReadFile(args[i+1])
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			probe = rpc.HTTPClient(&tls.Config{RootCAs: pool})
			s.base = "https://" + addr
		}
	}
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := probe.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-s.exited:
			t.Fatalf("serve %v exited before it was ready: %v", args, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %v never became ready: %v", args, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants a clean exit within 15 s.
func (s *served) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("serve %v exited with %v after SIGTERM", s.cmd.Args[1:4], err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("serve %v did not stop within 15s of SIGTERM", s.cmd.Args[1:4])
	}
}

// The card path in the scale-out shape: ledger, card, authorization and
// the ISO 8583 gateway each in a process of its own, on PostgreSQL (a
// schema each), calling one another over HTTPS with mutual TLS, each with a
// certificate naming it. A purchase sent over TCP to the gateway process is
// approved and holds the money in the ledger process; a retransmission
// holds nothing more; a reversal releases it. Without a certificate, or
// with one that names a caller the policy does not grant, the card service
// refuses to reveal a card.
func TestServeCardPathAcrossProcesses(t *testing.T) {
	pg := storetest.Database(t)
	ca := testcert.NewCA(t, "corebank test CA")
	certs := t.TempDir()
	as := func(name string, args ...string) []string {
		f := ca.WriteFiles(t, certs, name)
		return append([]string{"--service", name, "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}, args...)
	}
	onPG := []string{"--store", "postgres", "--postgres-url", pg}
	led := startServe(t, nil, as(ledger.Name, onPG...)...)
	crd := startServe(t, cardSecrets, as(card.Name, onPG...)...)
	auth := startServe(t, nil, as(authorization.Name, append([]string{"--ledger-url", led.base, "--card-url", crd.base}, onPG...)...)...)
	iso := freeAddr(t)
	gw := startServe(t, nil, as(cardnetService, "--authorization-url", auth.base, "--iso8583", iso)...)

	client := func(name string) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if name != "" {
			cfg.Certificates = []tls.Certificate{ca.Pair(t, name)}
		}
		return rpc.HTTPClient(cfg)
	}
	ctx := context.Background()
	l := &ledger.Client{RPC: rpc.NewHTTPClient(led.base, client(callerAPI))}
	cs := &card.Client{RPC: rpc.NewHTTPClient(crd.base, client(callerAPI))}
	funding, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "funding", Currency: "GBP", Rule: ledger.RuleNone})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "alice", Currency: "GBP", Owner: "customer:alice", Rule: ledger.RuleLimit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: "fund", Legs: []ledger.Leg{
		{AccountID: funding.ID, Amount: -100_00, Currency: "GBP"}, {AccountID: acct.ID, Amount: 100_00, Currency: "GBP"},
	}}); err != nil {
		t.Fatal(err)
	}
	c, err := cs.Issue(ctx, card.IssueRequest{Key: "alice-card", AccountID: acct.ID, CustomerID: "cus_alice", Currency: "GBP"})
	if err != nil {
		t.Fatal(err)
	}
	details, err := demoCardDetails(ctx, cs, []card.Card{*c})
	if err != nil {
		t.Fatal(err)
	}
	// The health checks answer without a client certificate; the spans
	// only with one.
	for path, want := range map[string]int{"/readyz": 200, "/metrics": 200, "/debug/traces": http.StatusUnauthorized} {
		rsp, err := client("").Get(crd.base + path)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != want {
			t.Errorf("GET %s without a client certificate: %d, want %d", path, rsp.StatusCode, want)
		}
	}
	if rsp, err := client(callerOperator).Get(crd.base + "/debug/traces"); err != nil || rsp.StatusCode != 200 {
		t.Errorf("GET /debug/traces with a certificate: %v, %v", rsp, err)
	} else {
		rsp.Body.Close()
	}
	reveal := card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "show card"}
	for name, want := range map[string]errors.Code{"": errors.Unauthenticated, cardnetService: errors.Forbidden, authorization.Name: errors.Forbidden} {
		// The header claims to be the customer side; the certificate says who it is.
		other := &card.Client{RPC: rpc.NewHTTPClient(crd.base, client(name))}
		if _, err := other.Reveal(rpc.WithCaller(ctx, callerAPI), reveal); errors.CodeOf(err) != want {
			t.Errorf("reveal with certificate %q claiming %s: %v, want %s", name, callerAPI, err, want)
		}
	}

	spec := cardnet.DefaultSpec()
	conn, err := (&cardnet.Dialer{Spec: spec}).Dial(context.Background(), iso)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := signOn(context.Background(), conn, spec, 1); err != nil {
		t.Fatal(err)
	}
	traffic := sim.NewTraffic(simCards(details, "GBP"), nil, 5)
	var req *cardnet.Request
	for req == nil || req.BillingCurrency != "" || req.Amount > 100_00 {
		req = traffic.Purchase(time.Now()) // one in pounds, within the balance
	}
	m, err := req.Message(spec)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *cardnet.Message) *cardnet.Message {
		t.Helper()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := conn.Send(sctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := send(m)
	if resp.Get(39) != string(cardnet.Approved) || len(resp.Get(38)) != 6 {
		t.Fatalf("purchase answered %s (auth code %q), want 00 and a code", resp.Get(39), resp.Get(38))
	}
	wantBalance := func(what string, pending int64) {
		t.Helper()
		b, err := l.Balance(ctx, acct.ID, time.Time{})
		if err != nil || b.Posted != 100_00 || b.Pending != pending {
			t.Fatalf("%s: balance %+v, %v; want 10000 posted, %d pending", what, b, err, pending)
		}
	}
	wantBalance("after the purchase", req.Amount)
	if again := send(m); again.Get(39) != resp.Get(39) || again.Get(38) != resp.Get(38) {
		t.Errorf("retransmission answered %s/%s, want %s/%s", again.Get(39), again.Get(38), resp.Get(39), resp.Get(38))
	}
	wantBalance("after the retransmission", req.Amount)

	rev := &cardnet.Request{
		MTI: cardnet.MTIReversalRequest, PAN: req.PAN, ProcessingCode: req.ProcessingCode,
		Amount: req.Amount, Currency: req.Currency, TransmissionTime: req.TransmissionTime,
		STAN: "999999", AcquirerID: req.AcquirerID, RRN: req.RRN, AuthID: resp.Get(38),
		Original: &cardnet.OriginalData{MTI: cardnet.MTIAuthorizationRequest, STAN: req.STAN, TransmissionTime: req.TransmissionTime, AcquirerID: req.AcquirerID},
	}
	rm, err := rev.Message(spec)
	if err != nil {
		t.Fatal(err)
	}
	if r := send(rm); r.Get(39) != string(cardnet.Approved) {
		t.Fatalf("reversal answered %s, want 00", r.Get(39))
	}
	wantBalance("after the reversal", 0)

	// Front to back, as an operator would: nothing in flight is lost.
	for _, s := range []*served{gw, auth, crd, led} {
		s.stop(t)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A client that sends its headers and stalls in its body must not take the
// whole shutdown grace: HTTP gets half of it, then its connections are cut,
// and the services still drain and flush their outboxes.
func TestServeStopFlushesDespiteAStalledClient(t *testing.T) {
	var stderr syncbuf.Buffer
	addr := freeAddr(t)
	s := startCorebankTo(t, &stderr, cardSecrets, addr, "serve", "--http", addr, "--data", t.TempDir(), "--log-level", "warn", "--service", "card", "--shutdown-grace", "2s")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /rpc/card/get HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	// The server says "100 Continue" when the handler starts reading the
	// body: from then on the request is in flight.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("no 100 Continue: %q, %v", line, err)
	}
	fmt.Fprint(conn, `{"id":`) // and no more
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
	if strings.Contains(stderr.String(), "flush outbox") {
		t.Errorf("a stalled client left the stop no time to flush the outbox:\n%s", stderr.String())
	}
}

// cardSecrets are the card service's keys, from the environment as in
// production.
var cardSecrets = []string{
	"COREBANK_CARD_KEYRING=k1:" + strings.Repeat("1f", 32),
	"COREBANK_CARD_HASH_KEY=" + strings.Repeat("2e", 32),
	"COREBANK_CARD_CVK=0123456789ABCDEF:FEDCBA9876543210",
}
