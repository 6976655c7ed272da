package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
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
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "serve", "--service", "ledger", "--store", "postgres", "--postgres-url", pg,
		"--http", addr, "--data", t.TempDir(), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "COREBANK_TEST_MAIN=1")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx := rpc.WithCaller(context.Background(), "test")
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

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
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
