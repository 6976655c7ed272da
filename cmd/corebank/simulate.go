package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/rpc"
)

// cardsHelp documents the --cards file for simulate and bench auth.
const cardsHelp = `The --cards file is a JSON list of test cards the issuer knows:

  [{"pan": "4000001234567899", "expiry": "2912", "cvc": "123", "currency": "GBP"},
   {"pan": "5100009876543210", "expiry": "3006", "cvc": "456", "currency": "EUR"}]

pan is 12 to 19 digits, expiry YYMM, cvc 3 or 4 digits, currency the ISO 4217
code of the card's account (its billing currency). Numbers are never logged.
`

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: corebank simulate --cards FILE | --cards-of CUSTOMERS [flags]\n\n"+
			"Connect to a gateway as the card network, sign on, send realistic traffic\n"+
			"(purchases, declines, reversals, incremental authorizations, retransmissions,\n"+
			"stand-in advices, 0200 financials, refunds), sign off, and write the clearing\n"+
			"file of what was approved.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+cardsHelp)
	}
	var (
		addr      = fs.String("iso8583", cardnet.DefaultAddr, "the gateway's ISO 8583 address")
		rate      = fs.Float64("rate", 20, "scenarios started per second")
		duration  = fs.Duration("duration", 30*time.Second, "how long to send traffic")
		cardsFile = fs.String("cards", "", "JSON list of test cards (see below); this or --cards-of")
		cardsOf   = fs.String("cards-of", "", "comma-separated customer ids (the demo's: cus_demo1,cus_demo2,cus_demo3) whose active cards to play, revealed from the running corebank at --url as the customer app would (caller api; each reveal audited)")
		url       = fs.String("url", "http://127.0.0.1:8080", "the running corebank's HTTP address, for --cards-of")
		tc        config
		clearOut  = fs.String("clearing-out", "", "write the clearing file (docs/clearing.md format) here")
		seed      = fs.Uint64("seed", 0, "random seed; 0 picks one from the clock")
		echo      = fs.Duration("echo", 30*time.Second, "interval of echo tests (0800/301)")
		verbose   = fs.Bool("v", false, "log every message's outcome")
		specFile  = fs.String("iso8583-spec", "", specFlagHelp)
	)
	tc.tlsFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := loadSpecFile(*specFile)
	if err != nil {
		return err
	}
	if err := checkRate("--rate", *rate); err != nil || *rate == 0 {
		return fmt.Errorf("simulate: --rate %v: want more than 0, at most %g per second", *rate, float64(sim.MaxRate))
	}
	var cards []sim.Card
	switch {
	case *cardsFile != "" && *cardsOf != "":
		return fmt.Errorf("simulate: --cards or --cards-of, not both")
	case *cardsOf != "":
		cards, err = revealCardsOf(ctx, &tc, *url, strings.Split(*cardsOf, ","))
	default:
		cards, err = readCardsFile(*cardsFile)
	}
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	s := &sim.Simulator{
		Addr: *addr, Cards: cards, Rate: *rate, Duration: *duration,
		Rand: rand.New(rand.NewPCG(*seed, 0)), Log: log, EchoEvery: *echo, Spec: spec,
	}
	// The clearing file holds full card numbers: written owner-only, to a
	// temporary file beside --clearing-out, which replaces it once the run
	// has presented what it approved. The simulator writes that whatever
	// ended the run (the network clears what it approved); a run that
	// ends before (no gateway, no sign-on) or cannot write it leaves the
	// last file as it was.
	// A target that is not a regular file (/dev/stdout, a pipe) is
	// written as it is; a link, where it leads.
	var out *os.File
	var cw *errWriter
	target, direct := *clearOut, false
	if *clearOut != "" {
		if resolved, err := filepath.EvalSymlinks(target); err == nil {
			target = resolved
		}
		if fi, err := os.Stat(target); err == nil && !fi.Mode().IsRegular() {
			direct = true
			out, err = os.OpenFile(target, os.O_WRONLY|os.O_TRUNC, 0)
		} else {
			out, err = os.CreateTemp(filepath.Dir(target), ".clearing-*")
			if err == nil {
				defer os.Remove(out.Name()) // after the rename, nothing
			}
		}
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		defer out.Close()
		cw = &errWriter{w: out}
		s.Clearing = cw
	}
	log.Info("simulate: starting", "seed", *seed, "cards", len(cards))
	res, runErr := s.Run(ctx)
	if res != nil {
		printSimResult(stdout, res)
	}
	if out != nil && res != nil && cw.err == nil {
		var err error
		if !direct {
			if err = out.Sync(); err == nil {
				err = out.Close()
			}
			if err == nil {
				err = os.Rename(out.Name(), target)
			}
		}
		if err != nil {
			return errors.Join(runErr, fmt.Errorf("simulate: %w", err))
		}
		fmt.Fprintf(stdout, "clearing file %s: %d records, control total %d\n", *clearOut, len(res.Clearing.Records), res.Clearing.ControlTotal())
	}
	if runErr != nil {
		return runErr
	}
	if res.Mismatches > 0 {
		return fmt.Errorf("simulate: %d retransmissions got a different answer", res.Mismatches)
	}
	return nil
}

// revealCardsOf plays the given customers' active cards: it lists them and
// reveals each from the corebank at url as the customer side (caller api;
// with --tls-*, a certificate naming it), as a banking app's "show card
// details" does, each reveal audited (as the demo's own simulator's are).
// The numbers stay in memory.
func revealCardsOf(ctx context.Context, tc *config, url string, customers []string) ([]sim.Card, error) {
	_, clientTLS, err := tc.tlsConfigs()
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if err := checkClient(clientTLS, "the customer side", callerAPI, map[string]string{"url": url}); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	ctx, cancel := context.WithTimeout(rpc.WithCaller(ctx, callerAPI), 30*time.Second)
	defer cancel()
	c := &card.Client{RPC: rpc.NewHTTPClient(url, rpc.HTTPClient(clientTLS))}
	var active []card.Card
	for _, cus := range customers {
		list, err := c.List(ctx, strings.TrimSpace(cus))
		if err != nil {
			return nil, fmt.Errorf("simulate: cards of %s: %w", cus, err)
		}
		for _, k := range list {
			if k.State == card.StateActive {
				active = append(active, k)
			}
		}
	}
	details, err := demoCardDetails(ctx, c, active)
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	out := make([]sim.Card, len(details))
	for i, d := range details {
		out[i] = simCard(d, active[i].Currency)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("simulate: --cards-of %s: no active cards", strings.Join(customers, ","))
	}
	return out, nil
}

func readCardsFile(name string) ([]sim.Card, error) {
	if name == "" {
		return nil, fmt.Errorf("--cards or --cards-of is required (a JSON list of test cards, or the customers whose cards to play; see -h)")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return sim.ReadCards(f)
}

func printSimResult(w io.Writer, res *sim.Result) {
	fmt.Fprintf(w, "%s: %d approvals, %d unanswered, %d retransmission mismatches\n",
		res.Elapsed.Round(time.Millisecond), len(res.Approvals), res.Errors, res.Mismatches)
	kinds := make([]string, 0, len(res.Scenarios))
	for k, n := range res.Scenarios {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "scenarios: %v\n", kinds)
	mtis := make([]string, 0, len(res.Codes))
	for m := range res.Codes {
		mtis = append(mtis, m)
	}
	slices.Sort(mtis)
	for _, m := range mtis {
		fmt.Fprintf(w, "  %s: %v\n", m, res.Codes[m])
	}
	if res.FirstError != nil {
		fmt.Fprintf(w, "first error: %v\n", res.FirstError)
	}
}

// errWriter is w, remembering the first error a write returned.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
