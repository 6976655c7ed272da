package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
)

// benchAuthResult is what `corebank bench auth --json` prints.
type benchAuthResult struct {
	Target      string           `json:"target"`
	Connections int              `json:"connections"`
	Clients     int              `json:"clients"`
	OfferedRate float64          `json:"offered_rate,omitempty"`
	DurationS   float64          `json:"duration_s"`
	Auths       int64            `json:"auths"`
	AuthsPerS   float64          `json:"auths_per_s"`
	Approved    int64            `json:"approved"`
	P50ms       float64          `json:"p50_ms"`
	P99ms       float64          `json:"p99_ms"`
	P999ms      float64          `json:"p999_ms"`
	Maxms       float64          `json:"max_ms"`
	Errors      int64            `json:"errors"`
	Codes       map[string]int64 `json:"codes"`
	GOMAXPROCS  int              `json:"gomaxprocs"`
}

// benchAuth drives a running gateway with 0100 purchases over real TCP.
func benchAuth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench auth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: corebank bench auth --iso8583 ADDR --cards FILE [flags]\n\n"+
			"Send 0100 purchases from the simulator's merchant catalogue to a running\n"+
			"gateway over TCP and report authorizations/s, latency and response codes.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+cardsHelp)
	}
	var (
		addr      = fs.String("iso8583", cardnet.DefaultAddr, "the gateway's ISO 8583 address")
		cardsFile = fs.String("cards", "", "JSON list of test cards the issuer knows; required")
		duration  = fs.Duration("duration", 10*time.Second, "how long to drive load")
		rate      = fs.Float64("rate", 0, "offered load in authorizations/s (open loop: latency counts from each request's scheduled time); 0 sends flat out")
		conns     = fs.Int("connections", 4, "TCP connections to the gateway")
		clients   = fs.Int("clients", 256, "requests outstanding at most, spread over the connections")
		timeout   = fs.Duration("timeout", 10*time.Second, "how long to wait for an answer before counting an error")
		seed      = fs.Uint64("seed", 0, "random seed; 0 picks one from the clock")
		asJSON    = fs.Bool("json", false, "print one JSON object")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *conns < 1 || *clients < 1 {
		return fmt.Errorf("bench: --connections and --clients must be at least 1")
	}
	cards, err := readCardsFile(*cardsFile)
	if err != nil {
		return err
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	spec := cardnet.DefaultSpec()
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

	var work chan time.Time
	if *rate > 0 {
		work = make(chan time.Time, *clients)
		go pace(ctx, work, *rate, *duration)
	}
	var (
		stopAt = time.Now().Add(*duration)
		mu     sync.Mutex
		lat    []time.Duration
		codes  = map[string]int64{}
		nerr   atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(c *cardnet.Client) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			localCodes := map[string]int64{}
			for ctx.Err() == nil {
				t0 := time.Now()
				if work != nil {
					var ok bool
					if t0, ok = <-work; !ok {
						break
					}
				} else if t0.After(stopAt) {
					break
				}
				m, err := traffic.Purchase(time.Now()).Message(spec)
				if err != nil {
					nerr.Add(1)
					continue
				}
				sctx, cancel := context.WithTimeout(ctx, *timeout)
				resp, err := c.Send(sctx, m)
				cancel()
				d := time.Since(t0)
				if err != nil {
					nerr.Add(1)
					continue
				}
				local = append(local, d)
				localCodes[resp.Get(39)]++
			}
			mu.Lock()
			lat = append(lat, local...)
			for k, v := range localCodes {
				codes[k] += v
			}
			mu.Unlock()
		}(cs[i%len(cs)])
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := benchAuthResult{
		Target: *addr, Connections: *conns, Clients: *clients, OfferedRate: *rate,
		DurationS: elapsed.Seconds(), Auths: int64(len(lat)), AuthsPerS: float64(len(lat)) / elapsed.Seconds(),
		Approved: codes[string(cardnet.Approved)] + codes[string(cardnet.PartiallyApproved)],
		P50ms:    pct(lat, 0.50), P99ms: pct(lat, 0.99), P999ms: pct(lat, 0.999), Maxms: pct(lat, 1),
		Errors: nerr.Load(), Codes: codes, GOMAXPROCS: runtime.GOMAXPROCS(0),
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
