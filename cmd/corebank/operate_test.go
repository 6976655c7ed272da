package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/internal/syncbuf"
)

// blackhole accepts TCP connections and never answers: an OTLP collector
// that hangs (overloaded, or a firewall that swallows packets).
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

// startDemo runs the demo with args and returns its HTTP base URL, its
// result channel and its logs.
func startDemo(t *testing.T, ctx context.Context, args ...string) (string, chan error, *syncbuf.Buffer) {
	t.Helper()
	outR, outW := io.Pipe()
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"demo", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--iso8583", "127.0.0.1:0"}, args...), outW, logs) // a later --http wins
		outW.Close()
	}()
	addrRE := regexp.MustCompile(`http://([0-9.]+:\d+|\[[0-9a-f:]*\]:\d+)/`)
	lines := bufio.NewScanner(outR)
	var base string
	for lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil && base == "" {
			base = "http://" + m[1]
		}
		if strings.Contains(lines.Text(), "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, outR)
	if base == "" {
		t.Fatalf("demo printed no HTTP address; logs:\n%s", logs.String())
	}
	return base, done, logs
}

// --shutdown-grace is "how long a stop may take to drain and flush,
// counted from the signal": with --otlp-endpoint naming a collector that
// does not answer, the spans not yet exported get what is left of the
// grace, not the exporter's own timeouts and retries (about a minute and a
// half).
func TestDemoStopsWithinItsGraceWhenTheCollectorHangs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done, logs := startDemo(t, ctx, "--sim-rate", "20", "--shutdown-grace", "2s", "--otlp-endpoint", blackhole(t))
	time.Sleep(2 * time.Second) // some spans, not yet exported (the batcher exports every 5 s)
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("demo stopped %v after the signal, grace 2s (err %v)", took.Round(100*time.Millisecond), err)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("demo still stopping 40s after the signal, grace 2s; logs tail:\n%s", tail(logs.String(), 600))
	}
}

// README's RPC example, as written (curl -d, naming the caller), reaches
// the ledger.
func TestReadmeRPCExampleWorks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	base, done, _ := startDemo(t, ctx, "--sim-rate", "0")
	defer func() { cancel(); <-done }()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "curl -H 'Corebank-Caller: operator' -d") {
		t.Fatal("README's RPC example is not the one this test sends")
	}
	// What curl -H ... -d sends: a form content type and the header.
	req, _ := http.NewRequest("POST", base+"/rpc/ledger/balance", strings.NewReader(`{"account_id":"acc_01m84wg43e2qtz96aphsj3jgc8"}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Corebank-Caller", "operator")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// not_found for this made-up id: the request reached the ledger.
	if resp.StatusCode != 404 || !strings.Contains(string(b), `"not_found"`) {
		t.Errorf("README's curl example: %d %s", resp.StatusCode, b)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// README: "Every flag can be set in the environment ... (`COREBANK_HTTP=0.0.0.0:8080`)".
// On such an address the demo serves plain-HTTP RPC, where the caller is
// whatever the Corebank-Caller header claims: any peer can claim "api" and
// reveal the demo cards. It says so at start, as serve does.
func TestDemoOnAllInterfacesWarnsItsRPCIsPlainHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	base, done, logs := startDemo(t, ctx, "--sim-rate", "0", "--http", "0.0.0.0:0")
	defer func() { cancel(); <-done }()
	base = "http://" + loopback(strings.TrimPrefix(base, "http://"))
	call := func(path, body string) string {
		req, _ := http.NewRequest("POST", base+"/rpc/"+path, strings.NewReader(body))
		req.Header.Set("Corebank-Caller", "api") // a claim, not a proof
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	list := call("card/list", `{"customer_id":"cus_demo1"}`)
	id := regexp.MustCompile(`"id":"(card_[0-9a-z]+)"`).FindStringSubmatch(list)
	if id == nil {
		t.Fatalf("card/list: %s", list)
	}
	reveal := call("card/reveal", `{"card_id":"`+id[1]+`","customer_id":"cus_demo1","reason":"anyone"}`)
	revealed := regexp.MustCompile(`"pan":"459999\d{10}"`).MatchString(reveal)
	if !revealed {
		t.Fatalf("set-up: the claimed api caller got no card details: %.80s", reveal)
	}
	if !strings.Contains(logs.String(), "plain HTTP on an address other machines may reach") {
		t.Errorf("demo on 0.0.0.0 never warned that its RPC is plain HTTP")
	}
}

// A simulate run that fails (here at once: the gateway's port is closed)
// leaves the previous run's clearing file as it was, which may not have
// been ingested yet; and the file, which holds full card numbers, is the
// owner's only.
func TestSimulateFailedRunKeepsTheClearingFile(t *testing.T) {
	dir := t.TempDir()
	cards, out, previous := lastClearing(t, dir)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"simulate", "--iso8583", closed, "--cards", cards, "--rate", "5", "--duration", "1s", "--clearing-out", out}, &stdout, &stderr)
	if err == nil {
		t.Fatal("simulate against a closed port succeeded")
	}
	if b, _ := os.ReadFile(out); string(b) != previous {
		t.Errorf("simulate failed (%v) and left --clearing-out as %q, was the previous run's %q", err, b, previous)
	}

	if left, _ := filepath.Glob(filepath.Join(dir, ".clearing-*")); len(left) != 0 {
		t.Errorf("the failed run left %v behind", left)
	}
}

// --log-json: "log JSON lines instead of text". A collector that refuses
// the spans (HTTP 400) makes the OpenTelemetry SDK report an error: it is
// logged through the process's logger, as JSON, not by the standard
// library's log in the middle of the JSON stream.
func TestLogJSONStaysJSONWhenExportFails(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer collector.Close()
	// The SDK's default handler writes to the standard logger; send it
	// where the process's stderr is, as in main.
	var logs syncbuf.Buffer
	prev := log.Writer()
	log.SetOutput(&logs)
	defer log.SetOutput(prev)

	ctx, cancel := context.WithCancel(context.Background())
	_, done, slogs := startDemo(t, ctx, "--sim-rate", "20", "--log-json", "--otlp-endpoint", collector.URL)
	time.Sleep(7 * time.Second) // the batcher exports every 5 s
	cancel()
	<-done
	if !strings.Contains(slogs.String(), "OpenTelemetry SDK reports an error") {
		t.Errorf("the refused export was not logged")
	}
	all := slogs.String() + logs.String()
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--log-json printed a line that is not JSON: %.200s", line)
			break
		}
	}
}

// A simulate run stopped early (Ctrl-C) still presents what it approved:
// the clearing file replaces the last one, whole.
func TestSimulateStoppedEarlyWritesItsClearingFile(t *testing.T) {
	addr := startTestGateway(t)
	out := filepath.Join(t.TempDir(), "clearing.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"simulate", "--iso8583", addr, "--cards", writeCards(t), "--rate", "100", "--duration", "1m", "--clearing-out", out, "--seed", "7"}, &stdout, &stderr)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no clearing file after a run stopped early: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "H,") || !strings.HasPrefix(lines[len(lines)-1], "T,") {
		t.Errorf("clearing file of a run stopped early is not header, records, trailer:\n%s", b)
	}
}

// The link to the gateway drops after some approvals (the gateway was
// restarted): the run fails, and still presents what it approved (the
// network clears what it approved), replacing the previous file.
func TestSimulateBrokenLinkStillWritesItsClearingFile(t *testing.T) {
	dir := t.TempDir()
	cards, out, previous := lastClearing(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var approved atomic.Int64
	broken := make(chan struct{})
	var once sync.Once
	srv := &cardnet.Server{Handler: cardnet.HandlerFunc(func(ctx context.Context, m *cardnet.Message) *cardnet.Message {
		a := cardnet.Answer{Code: cardnet.Approved}
		switch m.MTI()[1] {
		case '1', '2':
			a.AuthID = "A1B2C3"
		}
		resp, err := cardnet.Respond(m, a)
		if err != nil {
			return nil
		}
		if m.MTI() == "0100" && approved.Add(1) == 10 {
			once.Do(func() { close(broken) })
		}
		return resp
	})}
	go srv.Serve(ln)
	go func() { <-broken; srv.Close() }()
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"simulate", "--iso8583", ln.Addr().String(), "--cards", cards,
		"--rate", "200", "--duration", "5s", "--clearing-out", out, "--seed", "7"}, &stdout, &stderr)
	if err == nil {
		t.Errorf("simulate with a dropped link succeeded")
	}
	if approved.Load() < 10 {
		t.Fatalf("set-up: only %d approvals", approved.Load())
	}
	b, _ := os.ReadFile(out)
	if string(b) == previous || strings.Count(string(b), "\nD,") == 0 {
		t.Errorf("after %d approvals and a dropped link, --clearing-out is still the previous run's file %q: the approvals are never presented", approved.Load(), b)
	}
}

// lastClearing writes in dir a cards file of one card and the clearing
// file of an earlier run, and returns their paths and that file's content.
func lastClearing(t *testing.T, dir string) (cards, out, previous string) {
	t.Helper()
	cards, out = filepath.Join(dir, "cards.json"), filepath.Join(dir, "clearing.csv")
	previous = "H,F1,SIMNET,2026-11-23,0,0\nT,F1,0,0\n"
	if err := os.WriteFile(cards, []byte(`[{"pan":"4599990000000001","expiry":"3012","cvc":"123","currency":"GBP"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(previous), 0o600); err != nil {
		t.Fatal(err)
	}
	return cards, out, previous
}

// The README's pipeline against the demo: simulate plays the demo's cards
// (revealed through the card service as the customer side, --cards-of;
// never written to disk), writes the clearing file of what it approved,
// and clearing ingest settles it, every record matched.
func TestSimulateCardsOfTheDemoAndClear(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	iso := freeAddr(t)
	base, done, logs := startDemo(t, ctx, "--sim-rate", "0", "--iso8583", iso)
	defer func() { cancel(); <-done }()
	out := filepath.Join(t.TempDir(), "clearing.csv")
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"simulate", "--iso8583", iso, "--cards-of", "cus_demo1, cus_demo2,cus_demo3", "--url", base,
		"--rate", "40", "--duration", "1s", "--clearing-out", out, "--seed", "3"}, &stdout, &stderr); err != nil {
		t.Fatalf("simulate: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cards=3") {
		t.Errorf("simulate did not play the demo's three cards: %s", stderr.String())
	}
	if regexp.MustCompile(`459999\d{10}`).MatchString(logs.String() + stderr.String() + stdout.String()) {
		t.Errorf("a full card number in the output: the numbers must stay in memory")
	}
	stdout.Reset()
	if err := run(ctx, []string{"clearing", "ingest", "--file", out, "--url", base}, &stdout, &stderr); err != nil {
		t.Fatalf("clearing ingest: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Records   int   `json:"records"`
		Posted    int   `json:"posted"`
		Unmatched []any `json:"unmatched"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.Posted == 0 || len(rep.Unmatched) != 0 {
		t.Errorf("report %s: want records posted and none unmatched", stdout.String())
	}
	// Without a customer's cards, simulate refuses to start.
	err := run(ctx, []string{"simulate", "--iso8583", iso, "--cards-of", "cus_nobody", "--url", base, "--duration", "1s"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no active cards") {
		t.Errorf("simulate --cards-of a customer with no cards: %v", err)
	}
}
