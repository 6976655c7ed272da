package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/money"
)

// startTestGateway serves a gateway on loopback that approves every
// request of card 4000001234567899 and declines the others 14.
func startTestGateway(t *testing.T) string {
	t.Helper()
	return startTestGatewayWith(t, cardnet.HandlerFunc(func(ctx context.Context, m *cardnet.Message) *cardnet.Message {
		a := cardnet.Answer{Code: cardnet.Approved, AuthID: "T12345"}
		if req, err := cardnet.ParseRequest(m); err != nil || (req.BaseMTI() == "0100" || req.BaseMTI() == "0200") && req.PAN != "4000001234567899" {
			a = cardnet.Answer{Code: cardnet.InvalidCardNumber}
		}
		resp, err := cardnet.Respond(m, a)
		if err != nil {
			t.Error(err)
		}
		return resp
	}))
}

// startTestGatewayWith serves h over ISO 8583 on loopback until the test ends.
func startTestGatewayWith(t *testing.T, h cardnet.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &cardnet.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, cardnet.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func writeCards(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "cards.json")
	cards := `[{"pan":"4000001234567899","expiry":"2912","cvc":"123","currency":"GBP"},
	           {"pan":"5100009876543210","expiry":"3006","cvc":"456","currency":"EUR"}]`
	if err := os.WriteFile(name, []byte(cards), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestBenchAuthJSON(t *testing.T) {
	addr := startTestGateway(t)
	cards := writeCards(t)
	for _, rate := range []string{"0", "400"} {
		t.Run("rate "+rate, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"bench", "auth", "--iso8583", addr, "--cards", cards,
				"--duration", "500ms", "--rate", rate, "--connections", "2", "--clients", "16", "--json"}, &stdout, &stderr)
			if err != nil {
				t.Fatalf("bench auth: %v\n%s", err, stderr.String())
			}
			var got map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("not one JSON object: %v: %q", err, stdout.String())
			}
			for _, k := range []string{"auths_per_s", "p50_ms", "p99_ms", "p999_ms", "errors", "codes"} {
				if _, ok := got[k]; !ok {
					t.Errorf("no %q in %s", k, stdout.String())
				}
			}
			codes, _ := got["codes"].(map[string]any)
			if got["auths_per_s"].(float64) <= 0 || got["errors"].(float64) != 0 || codes["00"] == nil || codes["14"] == nil {
				t.Errorf("want authorizations, no errors, 00 and 14 answers: %s", stdout.String())
			}
			if rate == "400" {
				// 200 scheduled: fewer than half would mean the pacer
				// does not pace at the rate (not a speed check: a loaded
				// machine still sends most), more that it overran.
				if n := got["auths"].(float64); n < 100 || n > 210 {
					t.Errorf("%v authorizations at 400/s for 0.5 s", n)
				}
			}
		})
	}
}

func TestSimulateWritesClearingFile(t *testing.T) {
	addr := startTestGateway(t)
	// Through a link: the file is written where it leads, the link kept.
	dir := t.TempDir()
	out, link := filepath.Join(dir, "clearing.csv"), filepath.Join(dir, "latest.csv")
	if err := os.WriteFile(out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"simulate", "--iso8583", addr, "--cards", writeCards(t),
		"--rate", "100", "--duration", "500ms", "--clearing-out", link, "--seed", "5"}, &stdout, &stderr)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("--clearing-out's link was replaced (%v)", err)
	}
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// It holds full card numbers: the owner's only.
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("clearing file mode %v (%v), want no access for group or others", fi.Mode().Perm(), err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "H,SIMNET-") || !strings.HasPrefix(lines[len(lines)-1], "T,") {
		t.Errorf("clearing file is not header, records, trailer:\n%s", b)
	}
	if !strings.Contains(stdout.String(), "0 unanswered, 0 retransmission mismatches") {
		t.Errorf("summary: %s", stdout.String())
	}
	if strings.Contains(stderr.String(), "5100009876543210") || strings.Contains(stdout.String(), "5100009876543210") {
		t.Errorf("a full card number was printed")
	}
}

func TestSimulateNeedsCards(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"simulate", "--iso8583", "127.0.0.1:1"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--cards") {
		t.Errorf("simulate without --cards: %v", err)
	}
}

// Without --iso8583, bench auth starts the whole stack itself, pays with
// the funded cards it opened, and checks the ledger after the run.
func TestBenchAuthEmbedded(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "auth", "--duration", "1s", "--cards", "20", "--clients", "16", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench auth: %v\n%s", err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON object: %v: %q", err, stdout.String())
	}
	for _, k := range []string{"auths_per_s", "p50_ms", "p99_ms", "p999_ms", "errors", "codes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, stdout.String())
		}
	}
	codes, _ := got["codes"].(map[string]any)
	if approved, _ := codes["00"].(float64); approved <= 0 || got["embedded"] != true || got["cards"] != float64(20) || got["errors"] != float64(0) {
		t.Errorf("want an embedded run over 20 cards with approvals and no errors: %s", stdout.String())
	}
	if pan := regexp.MustCompile(`459999\d{10}`); pan.MatchString(stdout.String()) || pan.MatchString(stderr.String()) {
		t.Errorf("a full card number was printed")
	}
}

func TestBenchAuthCardsFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bench", "auth", "--cards", "cards.json"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--cards must be a number") {
		t.Errorf("a cards file without --iso8583: %v", err)
	}
}

// An answer that says the issuer failed (91, 96) is not an authorization:
// it is counted as an error, and left out of the rate and the latencies.
func TestBenchAuthCountsFailedAnswersAsErrors(t *testing.T) {
	h := cardnet.HandlerFunc(func(ctx context.Context, m *cardnet.Message) *cardnet.Message {
		code := cardnet.SystemMalfunction
		if m.MTI() == cardnet.MTINetworkRequest {
			code = cardnet.Approved
		}
		resp, _ := cardnet.Respond(m, cardnet.Answer{Code: code})
		return resp
	})
	addr := startTestGatewayWith(t, h)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bench", "auth", "--iso8583", addr, "--cards", writeCards(t),
		"--duration", "300ms", "--clients", "8", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench auth: %v\n%s", err, stderr.String())
	}
	var got struct {
		Auths      int64            `json:"auths"`
		AuthsPerS  float64          `json:"auths_per_s"`
		Errors     int64            `json:"errors"`
		ErrorCodes map[string]int64 `json:"error_codes"`
		Codes      map[string]int64 `json:"codes"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Auths != 0 || got.AuthsPerS != 0 || got.Errors == 0 || got.Codes["96"] != got.Errors || got.ErrorCodes["unavailable"] != got.Errors {
		t.Errorf("every answer 96: %s; want 0 auths, every request an error, and 96 in codes", stdout.String())
	}
}

// bench auth refuses flags it cannot mean, before it dials anything.
func TestBenchAuthRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--timeout", "-1s"},
		{"--timeout", "0s"},
		{"--workers", "-1"},
		{"--workers", "100000000"},
		{"--clients", "100000000"},
		{"--connections", "0"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"bench", "auth", "--iso8583", "127.0.0.1:1", "--cards", writeCards(t), "--duration", "100ms"}, args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("bench auth %v: %v, want the flag refused", args, err)
		}
	}
}

// TestBenchAuthEmbeddedGroupCommits checks the group-commit lines of an
// embedded run: they count the load only (the setup's accounts, funding
// and cards are left out), so the ledger wrote exactly one hold per
// approval, and authorization at least one record each.
func TestBenchAuthEmbeddedGroupCommits(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "auth", "--duration", "500ms", "--cards", "5", "--clients", "4"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench auth: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`(\d+) authorizations in .* \((\d+) approved\)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no summary line: %q", stdout.String())
	}
	auths, approved := atoi(t, m[1]), atoi(t, m[2])
	writes := map[string]int{}
	for _, g := range regexp.MustCompile(`bench auth: (\w+): (\d+) writes in (\d+) group commits`).FindAllStringSubmatch(stderr.String(), -1) {
		if atoi(t, g[3]) < 1 {
			t.Errorf("no group commits: %s", g[0])
		}
		writes[g[1]] = atoi(t, g[2])
	}
	if approved < 1 || auths != approved {
		t.Fatalf("want every authorization approved: %s", stdout.String())
	}
	if writes["ledger"] != approved || writes["authorization"] < auths || writes["card"] != 0 {
		t.Errorf("group commits %v for %d authorizations, %d approved:\n%s", writes, auths, approved, stderr.String())
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A bank loads its network's spec without code changes: --iso8583-spec
// with a binary bitmap (raw bytes, as many networks send it) runs the
// gateway and the load generator on it, end to end; a spec cardnet cannot
// use, or no file at all, stops the command before anything starts.
func TestBenchAuthTakesASpecFile(t *testing.T) {
	var spec map[string]any
	if err := json.Unmarshal(cardnet.DefaultSpecJSON(), &spec); err != nil {
		t.Fatal(err)
	}
	fields := spec["fields"].(map[string]any)
	fields["1"] = map[string]any{"type": "Bitmap", "length": 8, "description": "Bitmap", "enc": "Binary", "prefix": "Binary.Fixed"}
	binary := filepath.Join(t.TempDir(), "binary-bitmap.json")
	writeJSON(t, binary, spec)

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "auth", "--iso8583-spec", binary, "--duration", "300ms", "--cards", "5", "--clients", "4", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench auth: %v\n%s", err, stderr.String())
	}
	var got struct {
		Auths  int64            `json:"auths"`
		Errors int64            `json:"errors"`
		Codes  map[string]int64 `json:"codes"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Auths < 1 || got.Errors != 0 || got.Codes["00"] != got.Auths {
		t.Errorf("want approvals only under the binary-bitmap spec: %s", stdout.String())
	}

	fields["41"] = map[string]any{"type": "String", "length": 16, "description": "Card acceptor terminal identification", "enc": "ASCII", "prefix": "ASCII.Fixed"}
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeJSON(t, bad, spec)
	for file, want := range map[string]string{bad: "field 41", filepath.Join(t.TempDir(), "none.json"): "no such file"} {
		for _, args := range [][]string{
			{"bench", "auth", "--iso8583-spec", file, "--duration", "300ms", "--cards", "5"},
			{"demo", "--iso8583-spec", file, "--data", t.TempDir()},
			{"simulate", "--iso8583-spec", file, "--cards", "x.json"},
		} {
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), "--iso8583-spec") || !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %v, want an --iso8583-spec error naming %q", args[:2], err, want)
			}
		}
	}
}

func writeJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// --card-limits issues the bench's cards with daily and monthly limits
// they never reach: each decision then totals the card's spend, and every
// purchase is still approved.
func TestBenchAuthCardLimits(t *testing.T) {
	ctl := card.Controls{DailyLimit: money.MaxAmount, MonthlyLimit: money.MaxAmount}
	st, cards, err := startBenchStackWith(context.Background(), t.TempDir(), 2, cardnet.DefaultWorkers, nil, ctl, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())
	for _, sc := range cards {
		c, err := st.card.cards.Lookup(context.Background(), string(sc.PAN))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Controls.ReadsSpent() || c.Controls.DailyLimit != money.MaxAmount || c.Controls.MonthlyLimit != money.MaxAmount {
			t.Errorf("bench card's controls %+v, want the daily and monthly limits at the maximum", c.Controls)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bench", "auth", "--duration", "1s", "--cards", "20", "--clients", "16", "--card-limits", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench auth --card-limits: %v\n%s", err, stderr.String())
	}
	var res struct {
		Auths, Approved int64
		CardLimits      bool `json:"card_limits"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if !res.CardLimits || res.Auths == 0 || res.Approved != res.Auths {
		t.Errorf("bench auth --card-limits: %s", stdout.String())
	}
}
