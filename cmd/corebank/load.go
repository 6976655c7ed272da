package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/errors"
)

// load drives a benchmark: clients goroutines each send one request at a
// time, flat out for duration or, at rate, as a pacer schedules them.
type load struct {
	clients  int
	rate     float64 // requests/s offered; 0 sends flat out
	duration time.Duration
	// cpuProfile, if set, is where the load phase's CPU profile goes.
	cpuProfile string
	// blockProfile, if set, is where the load phase's blocking profile
	// goes: where goroutines waited (for locks, channels, commits).
	blockProfile string
	// trace, if set, is where the load phase's execution trace goes (go
	// tool trace; -pprof=sched shows time runnable but not running).
	trace string
}

// loadResult is what a load collected.
type loadResult struct {
	lat     []time.Duration  // latencies of the requests that succeeded, sorted
	labels  map[string]int64 // successes by the label do gave them
	errs    map[string]int64 // failures by error code
	nerr    int64
	elapsed time.Duration
}

// run calls do for each request, with the client's index and the request's
// sequence number. Latency counts from the request's scheduled time at a
// fixed rate (so queueing behind a slow answer is not hidden), else from
// when it was sent.
func (ld load) run(ctx context.Context, do func(ctx context.Context, client int, n int64) (label string, err error)) (*loadResult, error) {
	if err := ld.check(); err != nil {
		return nil, err
	}
	var work chan time.Time
	if ld.rate > 0 {
		work = make(chan time.Time, ld.clients)
		go pace(ctx, work, ld.rate, ld.duration)
	}
	if ld.cpuProfile != "" {
		f, err := os.Create(ld.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	if ld.trace != "" {
		f, err := os.Create(ld.trace)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return nil, err
		}
		defer trace.Stop()
	}
	if ld.blockProfile != "" {
		runtime.SetBlockProfileRate(int(50 * time.Microsecond))
		defer func() {
			runtime.SetBlockProfileRate(0)
			if f, err := os.Create(ld.blockProfile); err == nil {
				pprof.Lookup("block").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	res := &loadResult{labels: map[string]int64{}, errs: map[string]int64{}}
	var (
		stopAt = time.Now().Add(ld.duration)
		seq    atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	start := time.Now()
	for c := 0; c < ld.clients; c++ {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			labels, errs := map[string]int64{}, map[string]int64{}
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
				label, err := do(ctx, c, seq.Add(1))
				d := time.Since(t0)
				if err != nil {
					errs[string(errors.CodeOf(err))]++
					if label != "" { // an answer that is a failure
						labels[label]++
					}
					continue
				}
				local = append(local, d)
				if label != "" {
					labels[label]++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, local...)
			for k, v := range labels {
				res.labels[k] += v
			}
			for k, v := range errs {
				res.errs[k] += v
				res.nerr += v
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res, nil
}

// check refuses a load its flags cannot mean; the commands call it before
// they start anything.
func (ld load) check() error {
	if ld.clients < 1 || ld.clients > maxClients {
		return fmt.Errorf("bench: --clients %d: want 1 to %d", ld.clients, maxClients)
	}
	if ld.duration <= 0 {
		return fmt.Errorf("bench: --duration %v: want a positive duration", ld.duration)
	}
	if err := checkRate("--rate", ld.rate); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// maxClients bounds --clients: each is a goroutine with its own buffers.
const maxClients = 1 << 16

// checkRate refuses a rate that is negative, not a number, or too high to
// pace (sim.MaxRate).
func checkRate(flag string, r float64) error {
	if !(r >= 0 && r <= sim.MaxRate) { // false for NaN too
		return fmt.Errorf("%s %v: want 0 to %g per second", flag, r, float64(sim.MaxRate))
	}
	return nil
}

// checkWorkers refuses a gateway worker pool outside 1 to maxWorkers.
func checkWorkers(flag string, n int) error {
	if n < 1 || n > maxWorkers {
		return fmt.Errorf("%s %d: want 1 to %d", flag, n, maxWorkers)
	}
	return nil
}
