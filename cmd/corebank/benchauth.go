package main

import (
	"context"
	"encoding/json"
	stderrors "errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/prometheus/client_golang/prometheus"
)

// benchAuthResult is what `corebank bench auth --json` prints.
type benchAuthResult struct {
	Target      string  `json:"target"`
	Connections int     `json:"connections"`
	Clients     int     `json:"clients"`
	OfferedRate float64 `json:"offered_rate,omitempty"`
	DurationS   float64 `json:"duration_s"`
	Auths       int64   `json:"auths"`
	AuthsPerS   float64 `json:"auths_per_s"`
	Approved    int64   `json:"approved"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	Maxms       float64 `json:"max_ms"`
	// Errors counts the requests without a decision: no answer in time,
	// or an answer that says the issuer failed (91, 96) or could not read
	// the request (30). Auths and the latencies leave them out; Codes
	// counts every answer.
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"error_codes"`
	Codes      map[string]int64 `json:"codes"`
	GOMAXPROCS int              `json:"gomaxprocs"`
	Embedded   bool             `json:"embedded"`
	Cards      int              `json:"cards"`
	CardLimits bool             `json:"card_limits"` // embedded cards issued with spend limits (--card-limits)
}

// benchAuth drives a running gateway with 0100 purchases over real TCP.
func benchAuth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench auth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: corebank bench auth [--cards N] [flags]\n"+
			"       corebank bench auth --iso8583 ADDR --cards FILE [flags]\n\n"+
			"Send 0100 purchases from the simulator's merchant catalogue to the gateway\n"+
			"over TCP and report authorizations/s, latency and response codes. Without\n"+
			"--iso8583 it starts the whole embedded bank itself (SQLite, embedded NATS)\n"+
			"in a temporary directory, opens N funded accounts with a card each, and\n"+
			"checks the ledger's invariants after the run.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+cardsHelp)
	}
	var (
		addr      = fs.String("iso8583", "", "a running gateway's ISO 8583 address; empty starts the embedded bank")
		specFile  = fs.String("iso8583-spec", "", specFlagHelp)
		cardsFlag = fs.String("cards", "", "embedded: how many funded cards to pay with (default 1000); with --iso8583: a JSON list of test cards the issuer knows")
		cpuProf   = fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
		blockProf = fs.String("blockprofile", "", "write a blocking profile of the load phase to this file")
		traceOut  = fs.String("trace", "", "write an execution trace of the load phase to this file (go tool trace)")
		workers   = fs.Int("workers", cardnet.DefaultWorkers, "embedded: the gateway's worker pool (requests decided at once)")
		duration  = fs.Duration("duration", 10*time.Second, "how long to drive load")
		rate      = fs.Float64("rate", 0, "offered load in authorizations/s (open loop: latency counts from each request's scheduled time); 0 sends flat out")
		conns     = fs.Int("connections", 4, "TCP connections to the gateway")
		clients   = fs.Int("clients", 256, "requests outstanding at most, spread over the connections")
		timeout   = fs.Duration("timeout", 10*time.Second, "how long to wait for an answer before counting an error")
		seed      = fs.Uint64("seed", 0, "random seed; 0 picks one from the clock")
		asJSON    = fs.Bool("json", false, "print one JSON object")
		limits    = fs.Bool("card-limits", false, "embedded: give each card daily and monthly spend limits it never reaches, so each decision totals the card's spend as it does for a card with limits")
	)
	// Never the bank's gateway or cards: COREBANK_ISO8583 names its own.
	if err := parse(fs, args, "iso8583", "cards"); err != nil {
		return err
	}
	if *conns < 1 || *conns > 1024 {
		return fmt.Errorf("bench: --connections %d: want 1 to 1024", *conns)
	}
	if *timeout <= 0 {
		return fmt.Errorf("bench: --timeout %v: want a positive duration", *timeout)
	}
	if err := checkWorkers("--workers", *workers); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ld := load{clients: *clients, rate: *rate, duration: *duration, cpuProfile: *cpuProf, blockProfile: *blockProf, trace: *traceOut}
	if err := ld.check(); err != nil {
		return err
	}
	var (
		cards []sim.Card
		st    *stack
		err   error
	)
	spec, err := loadSpecFile(*specFile)
	if err != nil {
		return err
	}
	embedded := *addr == ""
	var before map[string]groupCommit
	if embedded {
		n := 1000
		if *cardsFlag != "" {
			if n, err = strconv.Atoi(*cardsFlag); err != nil || n < 1 {
				return fmt.Errorf("bench: --cards must be a number of cards without --iso8583, not %q", *cardsFlag)
			}
		}
		dir, err := os.MkdirTemp("", "corebank-bench-auth-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var ctl card.Controls
		if *limits {
			ctl.DailyLimit, ctl.MonthlyLimit = money.MaxAmount, money.MaxAmount
		}
		if st, cards, err = startBenchStackWith(ctx, dir, n, *workers, spec, ctl, stderr); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer st.stop(context.Background())
		*addr = st.gateway.addr()
		before = groupCommits(st.p.reg)
	} else if cards, err = readCardsFile(*cardsFlag); err != nil {
		return err
	}
	if spec == nil {
		spec = cardnet.DefaultSpec()
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	cs := make([]*cardnet.Client, *conns)
	for i := range cs {
		c, err := (&cardnet.Dialer{Spec: spec}).Dial(ctx, *addr)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer c.Close()
		if err := signOn(ctx, c, spec, i+1); err != nil {
			return fmt.Errorf("bench: sign on: %w", err)
		}
		cs[i] = c
	}
	traffic := sim.NewTraffic(cards, nil, *seed)
	if !*asJSON {
		fmt.Fprintf(stderr, "bench auth: %s, %d connections, %d clients, %s...\n", *addr, *conns, *clients, *duration)
	}

	out, err := ld.run(ctx, func(ctx context.Context, c int, _ int64) (string, error) {
		m, err := traffic.Purchase(time.Now()).Message(spec)
		if err != nil {
			return "", err
		}
		sctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		resp, err := cs[c%len(cs)].Send(sctx, m)
		if err != nil {
			return "", err
		}
		switch code := cardnet.ResponseCode(resp.Get(39)); code {
		case cardnet.IssuerUnavailable, cardnet.SystemMalfunction, cardnet.FormatError:
			return string(code), errors.Errorf(errors.Unavailable, "answered %s", code)
		default:
			return string(code), nil
		}
	})
	if err != nil {
		return err
	}
	lat, codes, elapsed := out.lat, out.labels, out.elapsed
	res := benchAuthResult{
		Target: *addr, Connections: *conns, Clients: *clients, OfferedRate: *rate,
		DurationS: elapsed.Seconds(), Auths: int64(len(lat)), AuthsPerS: float64(len(lat)) / elapsed.Seconds(),
		Approved: codes[string(cardnet.Approved)] + codes[string(cardnet.PartiallyApproved)],
		P50ms:    pct(lat, 0.50), P99ms: pct(lat, 0.99), P999ms: pct(lat, 0.999), Maxms: pct(lat, 1),
		Errors: out.nerr, ErrorCodes: out.errs, Codes: codes, GOMAXPROCS: runtime.GOMAXPROCS(0),
		Embedded: embedded, Cards: len(cards), CardLimits: embedded && *limits,
	}
	if embedded {
		// Drain the gateway (late decisions reconciled), then check the
		// books before the services stop.
		for _, c := range cs {
			c.Close()
		}
		if err := st.stopGateway(ctx); err != nil {
			return fmt.Errorf("bench: stop gateway: %w", err)
		}
		if err := ledger.Verify(ctx, st.ledger.db); err != nil {
			return fmt.Errorf("bench: after the run: %w", err)
		}
		fmt.Fprintln(stderr, "bench auth: ledger invariants hold")
		if !*asJSON {
			after := groupCommits(st.p.reg)
			for _, svc := range slices.Sorted(maps.Keys(after)) {
				d := after[svc].since(before[svc])
				if d.commits > 0 {
					fmt.Fprintf(stderr, "bench auth: %s: %d writes in %d group commits, %.1f writes and %.2f ms each on average\n",
						svc, uint64(d.writes), d.commits, d.writes/float64(d.commits), 1000*d.seconds/float64(d.commits))
				}
			}
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "%s: %d authorizations in %.1fs = %.0f auths/s (%d approved); latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; errors %d; codes %v\n",
		res.Target, res.Auths, res.DurationS, res.AuthsPerS, res.Approved, res.P50ms, res.P99ms, res.P999ms, res.Maxms, res.Errors, res.Codes)
	return nil
}

// signOn sends the network's sign-on (0800/001) on c and wants 00.
func signOn(ctx context.Context, c *cardnet.Client, spec *cardnet.Spec, stan int) error {
	m := spec.NewMessage(cardnet.MTINetworkRequest)
	m.Set(7, time.Now().UTC().Format("0102150405"))
	m.Set(11, fmt.Sprintf("%06d", stan))
	m.Set(70, cardnet.NetworkSignOn)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, m)
	if err != nil {
		return err
	}
	if resp.Get(39) != string(cardnet.Approved) {
		return fmt.Errorf("answered %s", resp.Get(39))
	}
	return nil
}

// startBenchStack starts the embedded bank in dir, quiet but for warnings,
// with the gateway on loopback, and opens n generously funded customer
// accounts with a card each and no controls. It returns the cards' details,
// revealed in process: they are never written anywhere.
func startBenchStack(ctx context.Context, dir string, n, workers int, spec *cardnet.Spec, stderr io.Writer, tweaks ...func(*config)) (*stack, []sim.Card, error) {
	return startBenchStackWith(ctx, dir, n, workers, spec, card.Controls{}, stderr, tweaks...)
}

// startBenchStackWith is startBenchStack with each card issued with ctl.
func startBenchStackWith(ctx context.Context, dir string, n, workers int, spec *cardnet.Spec, ctl card.Controls, stderr io.Writer, tweaks ...func(*config)) (*stack, []sim.Card, error) {
	// Every default of the embedded shape, then the bench's few changes.
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	var (
		cfg config
		cc  cardConfig
		gc  gatewayConfig
	)
	cfg.flags(fs)
	cc.flags(fs)
	gc.flags(fs)
	cfg.dataDir, cfg.logLevel, cfg.expireEvery = dir, "warn", 0
	gc.addr, gc.workers, gc.spec = "127.0.0.1:0", workers, spec
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	if err := cc.demoKeys(dir); err != nil {
		return nil, nil, err
	}
	st, err := startStack(ctx, cfg, cc, gc, []money.Currency{"GBP"}, stderr)
	if err != nil {
		return nil, nil, err
	}
	cards, err := openBenchCards(ctx, st, n, ctl)
	if err != nil {
		st.stop(context.Background())
		return nil, nil, err
	}
	return st, cards, nil
}

// openBenchCards opens n funded accounts with one card each, with ctl, 32
// at a time.
func openBenchCards(ctx context.Context, st *stack, n int, ctl card.Controls) ([]sim.Card, error) {
	l := &ledger.Client{RPC: st.from(callerAPI)}
	cs := &card.Client{RPC: st.from(callerAPI)}
	funding, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "bench-funding", Currency: "GBP", Owner: "bank:funding", Rule: ledger.RuleNone})
	if err != nil {
		return nil, err
	}
	issued := make([]card.Card, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			key := "bench-" + strconv.Itoa(i)
			a, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: key + "-account", Currency: "GBP", Owner: "customer:" + key, Rule: ledger.RuleLimit})
			if err == nil {
				_, err = l.Transfer(ctx, ledger.TransferRequest{Key: key + "-fund", Legs: []ledger.Leg{
					{AccountID: funding.ID, Amount: -1_000_000_000_00, Currency: "GBP"},
					{AccountID: a.ID, Amount: 1_000_000_000_00, Currency: "GBP"},
				}})
			}
			var c *card.Card
			if err == nil {
				c, err = cs.Issue(ctx, card.IssueRequest{Key: key + "-card", AccountID: a.ID, CustomerID: "cus_" + key, Currency: "GBP", Controls: ctl})
			}
			if err != nil {
				errs[i] = err
				return
			}
			issued[i] = *c
		})
	}
	wg.Wait()
	if err := stderrors.Join(errs...); err != nil {
		return nil, fmt.Errorf("open bench cards: %w", err)
	}
	details, err := demoCardDetails(ctx, cs, issued)
	if err != nil {
		return nil, err
	}
	return simCards(details, "GBP"), nil
}

// groupCommit is one service's group-commit histograms' counts and sums.
type groupCommit struct {
	commits         uint64
	writes, seconds float64
}

func (g groupCommit) since(b groupCommit) groupCommit {
	return groupCommit{g.commits - b.commits, g.writes - b.writes, g.seconds - b.seconds}
}

// groupCommits reads every service's store.Committer metrics from g, by
// service label, and the ledger's own committer's as "ledger".
func groupCommits(g prometheus.Gatherer) map[string]groupCommit {
	out := map[string]groupCommit{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		name := mf.GetName()
		writes := name == "corebank_store_group_writes" || name == "corebank_ledger_batch_writes"
		if !writes && name != "corebank_store_group_commit_seconds" && name != "corebank_ledger_commit_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			svc := "ledger"
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" {
					svc = l.GetValue()
				}
			}
			gc, h := out[svc], m.GetHistogram()
			if writes {
				gc.commits, gc.writes = h.GetSampleCount(), h.GetSampleSum()
			} else {
				gc.seconds = h.GetSampleSum()
			}
			out[svc] = gc
		}
	}
	return out
}
