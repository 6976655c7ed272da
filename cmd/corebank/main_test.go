package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/internal/syncbuf"
	"github.com/corebank/corebank/rpc"
)

// The demo starts with no configuration but a data directory and a port,
// serves health, metrics, RPC and its accounts page, takes card payments from
// its simulator, delivers the events to its consumer, never prints a card
// number, and stops cleanly when told to.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var logs syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--iso8583", "127.0.0.1:0", "--sim-rate", "20"}, outW, &logs)
		outW.Close()
	}()

	lines := bufio.NewScanner(outR)
	addrRE := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
	var base string
	for lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("demo printed no HTTP address; logs:\n%s", logs.String())
	}
	var rest syncbuf.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&rest, outR); close(copied) }() // ends when run closes outW

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %q", code, body)
	}

	// The accounts page shows the funding account, three customers and
	// the card settlement account, whose balances sum to zero. Payments
	// move money between them while the page reads them one at a time, so
	// a read may straddle a payment; an imbalance in the ledger would show
	// on every read.
	var page struct {
		Accounts []struct {
			ID      string                 `json:"id"`
			Balance struct{ Posted int64 } `json:"balance"`
		} `json:"accounts"`
	}
	var sum int64
	for range 5 {
		code, body := get("/")
		if code != 200 {
			t.Fatalf("/ = %d %q", code, body)
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("/ is not JSON: %v\n%s", err, body)
		}
		if len(page.Accounts) != 5 {
			t.Fatalf("demo has %d accounts, want 5", len(page.Accounts))
		}
		sum = 0
		for _, a := range page.Accounts {
			sum += a.Balance.Posted
		}
		if sum == 0 {
			break
		}
	}
	if sum != 0 {
		t.Errorf("demo balances sum to %d, want 0", sum)
	}

	// The ledger answers over HTTP RPC, with its error vocabulary.
	resp, err := postRPC(base+"/rpc/ledger/balance", `{"account_id":"`+page.Accounts[1].ID+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"currency":"GBP"`) {
		t.Errorf("balance over RPC = %d %s", resp.StatusCode, b)
	}
	// A clearing file larger than the RPC default bound reaches the
	// clearing service (which refuses this one for its content, not its
	// size); the same body to another service is refused for its size.
	big := `{"file_name":"big.csv","content":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("# padding\n"), 200_000)) + `"}`
	for _, c := range []struct{ path, want string }{
		{"/rpc/clearing/ingest", "clearing file"},
		{"/rpc/ledger/balance", "request body exceeds"},
	} {
		resp, err := postRPC(base+c.path, big)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), c.want) {
			t.Errorf("%d-byte request to %s = %d %.200s, want 400 and %q", len(big), c.path, resp.StatusCode, b, c.want)
		}
	}
	resp, err = postRPC(base+"/rpc/ledger/balance", `{"account_id":"acc_nope"}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), `"code":"not_found"`) {
		t.Errorf("unknown account over RPC = %d %s", resp.StatusCode, b)
	}

	// Card payments flow and their events reach the demo's durable
	// consumer, the authorization's and the ledger's holds.
	approved := regexp.MustCompile(`msg="payment approved £\d+\.\d\d at [^"]+" topic=authorization.approved`)
	deadline := time.Now().Add(15 * time.Second)
	for !approved.MatchString(logs.String()) || !strings.Contains(logs.String(), "topic=ledger.hold.placed") {
		if time.Now().After(deadline) {
			t.Fatalf("no approved payment and ledger.hold.placed event consumed; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The recent traces: the balance read over RPC above, among others.
	var traces struct {
		Spans []struct {
			Name    string `json:"name"`
			TraceID string `json:"trace_id"`
			Status  string `json:"status"`
		} `json:"spans"`
	}
	code, body := get("/debug/traces")
	if err := json.Unmarshal([]byte(body), &traces); code != 200 || err != nil {
		t.Errorf("/debug/traces = %d %.200q: %v", code, body, err)
	}
	names := map[string]bool{}
	for _, s := range traces.Spans {
		names[s.Name] = true
	}
	if !names["ledger/balance"] || !names["authorization/authorize"] || !names["cardnet/0100"] {
		t.Errorf("/debug/traces lacks ledger/balance, authorization/authorize or cardnet/0100: %v", names)
	}
	_, metrics := get("/metrics")
	for _, m := range []string{"corebank_ledger_writes_total", "corebank_rpc_requests_total", "corebank_outbox_published_total"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// Ctrl-C: a clean stop within seconds.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop within 10s of cancellation")
	}
	<-copied
	if !strings.Contains(rest.String(), "stopped cleanly") {
		t.Errorf("demo did not report a clean stop; stdout after banner:\n%s", rest.String())
	}
	// Demo cards are numbered from BIN 459999: none may be printed.
	if pan := regexp.MustCompile(`459999\d{10}`); pan.MatchString(logs.String()) || pan.MatchString(rest.String()) {
		t.Errorf("a full card number was printed")
	}
}

// bench ledger --json prints one JSON object with the fields the issue
// names, after checking the ledger's invariants.
func TestBenchLedgerJSON(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"bench", "ledger", "--duration", "500ms", "--clients", "16", "--accounts", "20", "--json", "--data", t.TempDir()}, &out, &errs)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errs.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out.String(), err)
	}
	for _, k := range []string{"transfers_per_s", "p50_ms", "p99_ms", "errors", "store"} {
		if _, ok := res[k]; !ok {
			t.Errorf("bench --json lacks %q: %s", k, out.String())
		}
	}
	if res["store"] != "sqlite" || res["transfers_per_s"].(float64) <= 0 || res["errors"].(float64) != 0 {
		t.Errorf("bench result %s", out.String())
	}
}

// Values a flag's help rules out are refused with the flag's name, before
// anything starts, never with a panic.
func TestBadFlagValues(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"demo", "--data", dir, "--rpc-timeout", "0"},
		{"demo", "--data", dir, "--shutdown-grace", "-1s"},
		{"demo", "--data", dir, "--sim-rate", "NaN"},
		{"demo", "--data", dir, "--sim-rate", "1e12"},
		{"demo", "--data", dir, "--hold-days", "0"},
		{"demo", "--data", dir, "--nats-replicas", "3"},
		{"demo", "--data", dir, "--http", ""},
		{"demo", "--data", dir, "--iso8583", "8583"},
		{"serve", "--service", "ledger", "--data", dir, "--http", "localhost"},
		{"serve", "--service", "ledger", "--data", dir, "--tls-cert", "ledger.crt"},
		{"demo", "--data", dir, "--tls-ca", "nope.crt", "--tls-key", "x.key", "--tls-cert", "nope.crt"},
		{"serve", "--service", "ledger", "--data", dir, "--nats-url", "nats://127.0.0.1:1", "--nats-replicas", "0"},
		{"demo", "--data", dir, "--iso8583-deadline", "-1s"},
		{"demo", "--data", dir, "--iso8583-deadline", "1h"},
		{"demo", "--data", dir, "--iso8583-workers", "0"},
		{"serve", "--service", "cardnet", "--data", dir, "--iso8583-on-timeout", "maybe"},
		{"serve", "--service", "ledger", "--data", dir, "--rpc-timeout", "-5s"},
		{"bench", "ledger", "--data", dir, "--accounts", "0"},
		{"bench", "ledger", "--data", dir, "--clients", "-1"},
		{"bench", "ledger", "--data", dir, "--rate", "-3"},
		{"bench", "auth", "--rate", "Inf"},
		{"simulate", "--rate", "0", "--cards", "nope.json"},
	} {
		flagName := ""
		for _, a := range args {
			if strings.HasPrefix(a, "--") && a != "--data" && a != "--service" && a != "--cards" && a != "--nats-url" {
				flagName = a
			}
		}
		var out, errs bytes.Buffer
		err := run(context.Background(), args, &out, &errs)
		// "-name" (the flag package's parse errors) or "--name" (ours).
		if err == nil || !strings.Contains(err.Error(), flagName[1:]) {
			t.Errorf("corebank %s = %v, want an error naming %s", strings.Join(args, " "), err, flagName)
		}
	}
}

// The flag package stops at the first word that is not a flag; the flags
// after it must not be dropped in silence ("--log-json false --store
// postgres" running on SQLite).
func TestStrayArgumentIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"serve", "--service", "ledger", "--data", dir, "--http", "127.0.0.1:0", "--log-json", "false", "--store", "postgres", "--postgres-url", "postgres://bank/books"},
		{"simulate", "--rate", "1", "oops", "--cards", "nope.json"},
		{"bench", "ledger", "--data", dir, "--duration", "1s", "extra"},
	} {
		var out, errs bytes.Buffer
		// Bounded: a command that ignored the stray word would run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := run(ctx, args, &out, &errs)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("corebank %s = %v, want an unexpected argument refused", strings.Join(args, " "), err)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errs); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("run(frobnicate) = %v", err)
	}
}

// Flags can come from the environment; a flag given wins.
func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("COREBANK_DURATION", "nonsense")
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"bench", "ledger"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "COREBANK_DURATION") {
		t.Errorf("a bad COREBANK_DURATION was not reported: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"bench", "ledger", "--duration", "200ms", "--clients", "2", "--accounts", "2", "--json", "--data", t.TempDir()}, &out, &errs); err != nil {
		t.Errorf("--duration did not win over COREBANK_DURATION: %v", err)
	}
	t.Setenv("COREBANK_DURATION", "300ms")
	t.Setenv("COREBANK_CLIENTS", "3")
	out.Reset()
	if err := run(context.Background(), []string{"bench", "ledger", "--accounts", "2", "--json", "--data", t.TempDir()}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Clients   int     `json:"clients"`
		DurationS float64 `json:"duration_s"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Clients != 3 || res.DurationS < 0.3 || res.DurationS > 2 {
		t.Errorf("environment not applied: clients %d, duration %.2fs", res.Clients, res.DurationS)
	}
}

// --keys random sends fresh keys each run: on a store kept between runs the
// second run's transfers are new ones, not conflicts with the first's.
func TestBenchLedgerRandomKeysAreFreshEachRun(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"bench", "ledger", "--duration", "300ms", "--keys", "random",
			"--data", dir, "--clients", "4", "--accounts", "10", "--json"}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, stderr.String())
		}
		var got struct {
			Transfers  int64            `json:"transfers"`
			Errors     int64            `json:"errors"`
			ErrorCodes map[string]int64 `json:"error_codes"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Transfers == 0 || got.Errors != 0 {
			t.Errorf("run %d: %d transfers, %d errors %v", i+1, got.Transfers, got.Errors, got.ErrorCodes)
		}
	}
}

// A rate so low its interval would not fit a Duration sends one request,
// not a flood (the interval wrapped to a negative one).
func TestBenchTinyRateEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var calls atomic.Int64
	ld := load{clients: 1, rate: 1e-10, duration: 100 * time.Millisecond}
	if err := ld.check(); err != nil {
		t.Fatal(err)
	}
	if _, err := ld.run(ctx, func(ctx context.Context, c int, n int64) (string, error) {
		calls.Add(1)
		return "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a 100 ms run at 1e-10/s sent %d requests, want 1", n)
	}
}

// serve refuses a service URL that is not http(s)://host, before it starts
// anything: a gateway with such a URL would be ready and answer nothing.
func TestServeRefusesBadServiceURL(t *testing.T) {
	for _, args := range [][]string{
		{"--service", "cardnet", "--authorization-url", "127.0.0.1:8081"},
		{"--service", "cardnet", "--authorization-url", "authorization:8080"},
		{"--service", "cardnet", "--authorization-url", "htp://x"},
		{"--service", "authorization", "--ledger-url", "http://ledger:8080", "--card-url", "card:8080"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errs bytes.Buffer
		err := run(ctx, append([]string{"serve", "--http", "127.0.0.1:0", "--iso8583", "127.0.0.1:0", "--data", dir}, args...), &out, &errs)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "-url") || !strings.Contains(err.Error(), "want http://") {
			t.Errorf("serve %v = %v, want the URL refused", args, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("serve %v created %s before refusing its flags", args, dir)
		}
	}
}

// postRPC posts body to an RPC url as the back office does.
func postRPC(url, body string) (*http.Response, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(rpc.HeaderCaller, callerOperator)
	return http.DefaultClient.Do(req)
}
