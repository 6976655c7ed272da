package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/sqlite"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: which? (ledger, auth)")
	}
	switch args[0] {
	case "ledger":
		return benchLedger(ctx, args[1:], stdout, stderr)
	case "auth":
		return benchAuth(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("bench: unknown target %q (ledger, auth)", args[0])
}

// benchResult is what `corebank bench ledger --json` prints.
type benchResult struct {
	Store         string           `json:"store"`
	Clients       int              `json:"clients"`
	OfferedRate   float64          `json:"offered_rate,omitempty"`
	Accounts      int              `json:"accounts"`
	Keys          string           `json:"keys"`
	DurationS     float64          `json:"duration_s"`
	Transfers     int64            `json:"transfers"`
	TransfersPerS float64          `json:"transfers_per_s"`
	P50ms         float64          `json:"p50_ms"`
	P99ms         float64          `json:"p99_ms"`
	P999ms        float64          `json:"p999_ms"`
	Maxms         float64          `json:"max_ms"`
	Errors        int64            `json:"errors"`
	ErrorCodes    map[string]int64 `json:"error_codes,omitempty"`
	GOMAXPROCS    int              `json:"gomaxprocs"`
	Batches       int64            `json:"batches"`
	MeanBatch     float64          `json:"mean_batch"`
	// Histogram bucket upper bounds; -1 past the last bucket (JSON has no
	// infinity).
	CommitP50ms float64 `json:"commit_p50_ms"`
	CommitP99ms float64 `json:"commit_p99_ms"`
}

func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		duration  = fs.Duration("duration", 10*time.Second, "how long to drive load")
		clients   = fs.Int("clients", 256, "concurrent clients, each sending one transfer at a time")
		rate      = fs.Float64("rate", 0, "offered load in transfers/s (open loop: latency counts from each request's scheduled time); 0 sends flat out")
		keyShape  = fs.String("keys", "card", "idempotency key shape: card (acquirer, date, STAN, RRN) or random (32 hex digits, as API clients send)")
		accounts  = fs.Int("accounts", 1000, "customer accounts; every transfer also touches one hot settlement account")
		storeKind = fs.String("store", "sqlite", "sqlite or postgres")
		pgURL     = fs.String("postgres-url", "", "PostgreSQL URL for --store postgres")
		dataDir   = fs.String("data", "", "SQLite directory (default: a fresh temporary directory, removed afterwards)")
		asJSON    = fs.Bool("json", false, "print one JSON object")
		cpuProf   = fs.String("cpuprofile", "", "write a CPU profile of the load phase to this file")
		blockProf = fs.String("blockprofile", "", "write a blocking profile of the load phase to this file")
		traceOut  = fs.String("trace", "", "write an execution trace of the load phase to this file (go tool trace)")
	)
	// Never the bank's store: COREBANK_DATA, _STORE and _POSTGRES_URL name
	// its books.
	if err := parse(fs, args, "data", "store", "postgres-url"); err != nil {
		return err
	}
	if *keyShape != "card" && *keyShape != "random" {
		return fmt.Errorf("bench: --keys must be card or random")
	}
	if *accounts < 1 {
		return fmt.Errorf("bench: --accounts %d: want at least 1", *accounts)
	}
	ld := load{clients: *clients, rate: *rate, duration: *duration, cpuProfile: *cpuProf, blockProfile: *blockProf, trace: *traceOut}
	if err := ld.check(); err != nil {
		return err
	}
	var db *store.DB
	var err error
	switch *storeKind {
	case "sqlite":
		dir := *dataDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "corebank-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		db, err = sqlite.Open(ctx, dir, "ledger")
	case "postgres":
		if *pgURL == "" {
			return fmt.Errorf("bench: --store postgres needs --postgres-url")
		}
		db, err = postgres.Open(ctx, *pgURL, "ledger")
	default:
		return fmt.Errorf("bench: --store must be sqlite or postgres")
	}
	if err != nil {
		return err
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	l, err := ledger.Open(ctx, db, ledger.Config{Metrics: reg})
	if err != nil {
		return err
	}
	defer l.Close()

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	settle, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: run + "-settle", Currency: "GBP", Rule: ledger.RuleNone})
	if err != nil {
		return err
	}
	ids := make([]string, *accounts)
	for i := range ids {
		a, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: fmt.Sprintf("%s-acct-%d", run, i), Currency: "GBP", Rule: ledger.RuleLimit})
		if err != nil {
			return err
		}
		ids[i] = a.ID
		// Fund generously so load never runs out of money.
		if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: fmt.Sprintf("%s-fund-%d", run, i), Legs: []ledger.Leg{
			{AccountID: settle.ID, Amount: -1_000_000_000_00, Currency: "GBP"},
			{AccountID: a.ID, Amount: 1_000_000_000_00, Currency: "GBP"},
		}}); err != nil {
			return err
		}
	}
	if !*asJSON {
		fmt.Fprintf(stderr, "bench ledger: %s, %d clients, %d accounts, %s...\n", *storeKind, *clients, *accounts, *duration)
	}

	// work hands out the scheduled send time of each request: at --rate, a
	// pacer schedules them; flat out, each client takes the next at once.
	beforeLoad := histograms(reg)
	acquirers := []string{"400012", "510045", "601100", "377711", "454545", "222300", "356600", "620000"}
	day := time.Now().UTC().Format("0102")
	rands := make([]*rand.Rand, *clients)
	for c := range rands {
		// Seeded per run: --keys random on a store kept between runs
		// (--data, PostgreSQL) must not send the last run's keys again.
		rands[c] = rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	}
	out, err := ld.run(ctx, func(ctx context.Context, c int, n int64) (string, error) {
		r := rands[c]
		src := ids[r.IntN(len(ids))]
		amt := int64(1 + r.IntN(10000))
		var key string
		if *keyShape == "random" {
			key = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		} else {
			// Shaped like the card path's: acquirer, transmission date,
			// STAN and RRN, interleaved across acquirers as they are on
			// the wire.
			acq := acquirers[int(n)%len(acquirers)]
			key = fmt.Sprintf("auth:%s:%s:%06d:%s%06d", acq, day, n%1_000_000, run[len(run)-6:], n)
		}
		_, err := l.Transfer(ctx, ledger.TransferRequest{Key: key, Legs: []ledger.Leg{
			{AccountID: src, Amount: -amt, Currency: "GBP"},
			{AccountID: settle.ID, Amount: amt, Currency: "GBP"},
		}})
		return "", err
	})
	if err != nil {
		return err
	}
	lat, errs, nerr, elapsed := out.lat, out.errs, out.nerr, out.elapsed
	res := benchResult{
		Store: *storeKind, Clients: *clients, Accounts: *accounts, OfferedRate: *rate, Keys: *keyShape,
		DurationS: elapsed.Seconds(), Transfers: int64(len(lat)),
		TransfersPerS: float64(len(lat)) / elapsed.Seconds(),
		P50ms:         pct(lat, 0.50), P99ms: pct(lat, 0.99), P999ms: pct(lat, 0.999), Maxms: pct(lat, 1),
		Errors: nerr, ErrorCodes: errs, GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	res.Batches, res.MeanBatch, res.CommitP50ms, res.CommitP99ms = commitStats(reg, beforeLoad)
	if err := ledger.Verify(ctx, db); err != nil {
		return fmt.Errorf("bench: after the run: %w", err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "store %s: %d transfers in %.1fs = %.0f transfers/s; latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; errors %d %v\n",
		res.Store, res.Transfers, res.DurationS, res.TransfersPerS, res.P50ms, res.P99ms, res.P999ms, res.Maxms, res.Errors, res.ErrorCodes)
	fmt.Fprintf(stdout, "group commits: %d of %.0f writes on average; commit time p50 %s, p99 %s (histogram bounds); invariants verified\n",
		res.Batches, res.MeanBatch, bound(res.CommitP50ms), bound(res.CommitP99ms))
	return nil
}

// pace sends scheduled times to work at rate per second for d, then closes
// it. When the clients fall behind, the schedule does not wait for them:
// their queueing shows in the latency.
func pace(ctx context.Context, work chan<- time.Time, rate float64, d time.Duration) {
	defer close(work)
	interval := sim.Interval(rate)
	start := time.Now()
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d || ctx.Err() != nil {
			return
		}
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		work <- at
	}
}

// histograms returns the ledger's batch and commit histograms by name.
func histograms(g prometheus.Gatherer) map[string]*dto.Histogram {
	out := map[string]*dto.Histogram{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) > 0 && mf.GetMetric()[0].GetHistogram() != nil {
			out[mf.GetName()] = mf.GetMetric()[0].GetHistogram()
		}
	}
	return out
}

// commitStats compares the ledger's histograms now with those taken before
// the load (so the setup's one-write commits do not count) and returns the
// number of group commits, the mean writes per commit, and the commit-time
// quantiles as histogram bucket upper bounds.
func commitStats(g prometheus.Gatherer, before map[string]*dto.Histogram) (batches int64, mean, p50, p99 float64) {
	after := histograms(g)
	if b, a := before["corebank_ledger_batch_writes"], after["corebank_ledger_batch_writes"]; a != nil {
		batches = int64(a.GetSampleCount() - b.GetSampleCount())
		if batches > 0 {
			mean = (a.GetSampleSum() - b.GetSampleSum()) / float64(batches)
		}
	}
	if b, a := before["corebank_ledger_commit_seconds"], after["corebank_ledger_commit_seconds"]; a != nil {
		p50, p99 = ms(bucketQuantile(b, a, 0.5)), ms(bucketQuantile(b, a, 0.99))
	}
	return batches, mean, p50, p99
}

// ms is seconds in milliseconds, or -1 for +Inf (past the last bucket).
func ms(s float64) float64 {
	if math.IsInf(s, 1) {
		return -1
	}
	return s * 1000
}

// bound shows a bucket bound in milliseconds, or that it is past the last.
func bound(ms float64) string {
	if ms < 0 {
		return "past the last bucket"
	}
	return fmt.Sprintf("<= %.2f ms", ms)
}

// bucketQuantile returns the upper bound of the bucket holding quantile q
// of the observations made between histograms b and a.
func bucketQuantile(b, a *dto.Histogram, q float64) float64 {
	want := q * float64(a.GetSampleCount()-b.GetSampleCount())
	for i, bk := range a.GetBucket() {
		n := bk.GetCumulativeCount()
		if i < len(b.GetBucket()) {
			n -= b.GetBucket()[i].GetCumulativeCount()
		}
		if float64(n) >= want {
			return bk.GetUpperBound()
		}
	}
	return math.Inf(1)
}

// pct returns the q-quantile of sorted durations in milliseconds.
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}
