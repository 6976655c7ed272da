package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/internal/syncbuf"
)

// A benchmark never takes its store or its target from the environment: in
// a bank's environment COREBANK_DATA, _STORE, _POSTGRES_URL and _ISO8583
// name the bank's own books and gateway.
func TestBenchIgnoresTheBanksStoreInTheEnvironment(t *testing.T) {
	bank := t.TempDir()
	t.Setenv("COREBANK_DATA", bank)
	t.Setenv("COREBANK_ISO8583", "127.0.0.1:1") // nothing listens there
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"bench", "ledger", "--duration", "200ms", "--clients", "2", "--accounts", "2", "--json"}, &out, &errs); err != nil {
		t.Fatal(err, errs.String())
	}
	if _, err := os.Stat(filepath.Join(bank, "ledger.db")); err == nil {
		t.Fatalf("bench ledger wrote into the bank's ledger at %s (COREBANK_DATA)", bank)
	}
	out.Reset()
	if err := run(context.Background(), []string{"bench", "auth", "--duration", "300ms", "--cards", "5", "--clients", "4", "--json"}, &out, &errs); err != nil {
		t.Fatalf("bench auth followed COREBANK_ISO8583 instead of starting its own bank: %v", err)
	}
	var res struct {
		Auths int64 `json:"auths"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Auths == 0 {
		t.Fatalf("bench auth: %v, %s", err, out.String())
	}
}

// Group commits slower than the histogram's last bucket (a stalled disk)
// still give a result in JSON, which has no infinity.
func TestBenchLedgerJSONWithCommitsPastTheLastBucket(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "corebank_ledger_commit_seconds", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	reg.MustRegister(h)
	before := histograms(reg)
	for range 10 {
		h.Observe(5)
	}
	var res benchResult
	res.Batches, res.MeanBatch, res.CommitP50ms, res.CommitP99ms = commitStats(reg, before)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("bench ledger --json: %v", err)
	}
	if !strings.Contains(string(b), `"commit_p99_ms":-1`) {
		t.Errorf("commit p99 past the last bucket: %s, want -1", b)
	}
}

// The demo stops within its grace even when the gateway's answers are late
// and its card network is still waiting for them: the gateway drains, late
// decisions are reconciled and every outbox is flushed (an error otherwise).
func TestDemoStopsWithinItsGraceWhenAnswersAreLate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var logs syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--iso8583", "127.0.0.1:0",
			"--sim-rate", "20", "--iso8583-deadline", "1ms", "--iso8583-on-timeout", "none", "--shutdown-grace", "4s"}, outW, &logs)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	for lines.Scan() && !strings.Contains(lines.Text(), "Press Ctrl-C") {
	}
	go io.Copy(io.Discard, outR)
	time.Sleep(2 * time.Second)
	cancel()
	start := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s")
	}
	took := time.Since(start)
	if err != nil {
		t.Fatalf("demo stopped after %v with %v\n%s", took.Round(100*time.Millisecond), err, logs.String())
	}
	// The --shutdown-grace contract (not a speed target): the stop fits
	// in its 4 s, with a second for scheduling on a busy machine.
	if took > 5*time.Second {
		t.Errorf("demo stopped after %v, grace 4s", took.Round(100*time.Millisecond))
	}
}
