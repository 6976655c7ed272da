package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/internal/testcert"
	"github.com/corebank/corebank/obs"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store/sqlite"
)

// Every method a service serves has a grant, and every grant names a
// method that is served: a method without one would be refused to
// everyone, a grant without a method is a leftover.
func TestGrantsCoverEveryMethod(t *testing.T) {
	st, _, err := startBenchStack(context.Background(), t.TempDir(), 1, cardnet.DefaultWorkers, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())
	served := map[string]bool{}
	for _, m := range st.router.Methods() {
		served[strings.TrimPrefix(m, "service.")] = true
	}
	g := grants()
	for route := range served {
		if len(g[route]) == 0 {
			t.Errorf("%s is served but no caller is granted it", route)
		}
	}
	for route := range g {
		if !served[route] {
			t.Errorf("grant for %s, which no service serves", route)
		}
	}
}

// cardServer serves a card service as corebank serve --service card does
// (platform.serveHTTP, with the platform's server filters), with one card
// issued; it returns the base URL, the card and its number.
func cardServer(t *testing.T) (string, *card.Card, string) {
	t.Helper()
	ctx := context.Background()
	tr, err := obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: card.Name, Recent: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	p := &platform{cfg: config{rpcTimeout: 5 * time.Second}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), reg: obs.NewRegistry(), tracing: tr}
	db, err := sqlite.Open(ctx, t.TempDir(), card.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cc := cardConfig{bin: "459999", keyring: "k1:" + strings.Repeat("11", 32), hashKey: strings.Repeat("22", 32), cvk: "0123456789ABCDEF:FEDCBA9876543210"}
	cfg, err := cc.config()
	if err != nil {
		t.Fatal(err)
	}
	cards, err := card.Open(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	router := rpc.NewRouter()
	card.Register(router, cards)
	srv, err := p.serveHTTP("127.0.0.1:0", router, func(context.Context) error { return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.stop(context.Background()) })
	c, err := cards.Issue(ctx, card.IssueRequest{Key: "k", AccountID: "acc_" + strings.Repeat("0", 26), CustomerID: "cus_alice", Currency: "GBP"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cards.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "test setup"})
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + srv.addr(), c, d.PAN
}

func postCard(t *testing.T, base, method, caller string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/rpc/card/"+method, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if caller != "" {
		req.Header.Set(rpc.HeaderCaller, caller)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// A served card service gives a card's details only to the customer side,
// and looks cards up by number only for the card path: a request naming no
// caller, or any other, is refused before the service runs, and learns
// nothing of the card.
func TestServedCardRefusesCallersNotGranted(t *testing.T) {
	base, c, pan := cardServer(t)
	reveal := card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "show card"}
	for _, caller := range []string{"", cardnetService, callerOperator, authorization.Name, clearing.Name, "anything"} {
		want := http.StatusForbidden
		if caller == "" {
			want = http.StatusUnauthorized
		}
		if st, out := postCard(t, base, card.MethodReveal, caller, reveal); st != want || bytes.Contains(out, []byte(pan[6:])) {
			t.Errorf("caller %q: reveal %d %s, want %d", caller, st, out, want)
		}
	}
	for _, caller := range []string{"", cardnetService, callerOperator, callerAPI, "anything"} {
		if st, out := postCard(t, base, card.MethodLookup, caller, card.LookupRequest{PAN: pan}); st != http.StatusForbidden && st != http.StatusUnauthorized || bytes.Contains(out, []byte(c.ID)) {
			t.Errorf("caller %q: lookup by number %d %s, want refused", caller, st, out)
		}
	}
	if st, out := postCard(t, base, card.MethodReveal, callerAPI, reveal); st != http.StatusOK || !bytes.Contains(out, []byte(pan)) {
		t.Errorf("the customer side's reveal: %d %s", st, out)
	}
	if st, out := postCard(t, base, card.MethodLookup, authorization.Name, card.LookupRequest{PAN: pan}); st != http.StatusOK || !bytes.Contains(out, []byte(c.ID)) {
		t.Errorf("authorization's lookup: %d %s", st, out)
	}
}

// A method nothing grants, whatever its name (a card number put in the
// path included), reaches neither /metrics nor /debug/traces under its own
// name, and mints no metric series per name.
func TestServedUnknownRoutesArePublishedAsUnknown(t *testing.T) {
	base, _, pan := cardServer(t)
	for i := range 50 {
		for _, caller := range []string{"", callerAPI} {
			if st, _ := postCard(t, base, fmt.Sprintf("m%d", i), caller, struct{}{}); st == http.StatusOK {
				t.Fatalf("unknown method m%d answered 200", i)
			}
		}
	}
	postCard(t, base, pan, callerAPI, card.LookupRequest{PAN: pan})
	get := func(path string) string {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	metrics := get("/metrics")
	if strings.Contains(metrics, pan[6:]) {
		t.Errorf("/metrics shows the card number put in a request's path")
	}
	series := 0
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "corebank_rpc_requests_total{") && strings.Contains(l, `service="card"`) {
			series++
		}
	}
	if series > 0 {
		t.Errorf("%d corebank_rpc_requests_total series for the card service after requests only for methods it does not grant; want them all counted as unknown", series)
	}
	if traces := get("/debug/traces"); strings.Contains(traces, pan[6:]) {
		t.Errorf("/debug/traces shows the card number put in a request's path")
	}
}

// A process proves the caller name it calls others as: serve refuses a
// certificate that names another than its --service, and clearing ingest
// one that is not operator's, or an http:// URL with one; all before
// anything starts or is sent.
func TestTLSCertificateMustNameTheCaller(t *testing.T) {
	ca := testcert.NewCA(t, "corebank test CA")
	dir := t.TempDir()
	gateway, operator := ca.WriteFiles(t, dir, "gateway"), ca.WriteFiles(t, dir, callerOperator)
	tlsArgs := func(f testcert.Files) []string {
		return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
	}
	clearingFile := filepath.Join(dir, "c.csv")
	if err := os.WriteFile(clearingFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"serve", "--service", cardnetService, "--data", dir, "--authorization-url", "https://127.0.0.1:1"}, tlsArgs(gateway)...), `Common Name is "gateway", but serve --service cardnet calls others as "cardnet"`},
		{append([]string{"clearing", "ingest", "--file", clearingFile, "--url", "http://127.0.0.1:1"}, tlsArgs(operator)...), "with --tls-cert, want https://host:port"},
		{append([]string{"clearing", "ingest", "--file", clearingFile, "--url", "https://127.0.0.1:1"}, tlsArgs(gateway)...), `Common Name is "gateway", but the back office calls others as "operator"`},
	} {
		var out, errs bytes.Buffer
		err := run(context.Background(), c.args, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("corebank %s = %v, want %q", strings.Join(c.args[:2], " "), err, c.want)
		}
	}
}
