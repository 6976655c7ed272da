package ledger_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store/sqlite"
)

// The crash test kills a process that is writing to the ledger, with
// SIGKILL at a random moment, again and again, and then checks that nothing
// it acknowledged was lost or done twice.
//
// The test binary plays both parts: TestCrash (the parent) re-executes it
// as TestCrashChild with crashChildEnv naming a directory. The child opens
// the SQLite store there and makes transfers from several goroutines,
// printing "SEND <key>" before each and "ACK <key> <transfer id>" once the
// ledger has answered success (so the write is durable), until it is
// killed. The parent reads those lines, kills the child, and starts it
// again, handing it some keys to retry: ones in flight at the kill and ones
// already acknowledged, which must come back with the same transfer id.

const (
	crashChildEnv = "LEDGER_CRASH_CHILD"
	crashSeedEnv  = "LEDGER_CRASH_SEED"
)

// crashPlan is what the parent tells a child, in plan.json in its directory.
type crashPlan struct {
	Run      int      `json:"run"`
	Accounts []string `json:"accounts"` // the first is the RuleNone funding account
	Retry    []string `json:"retry"`    // keys to send again first
}

// crashRequest is the one request a key stands for: the parent and every
// child derive it from the key alone, so a retry is the same request.
func crashRequest(key string, accounts []string) ledger.TransferRequest {
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64()
	from := int(x % uint64(len(accounts)))
	to := (from + 1 + int(x/7%uint64(len(accounts)-1))) % len(accounts)
	amount := 1 + int64(x/1009%100)
	return ledger.TransferRequest{Key: key, Legs: gbp(accounts[from], accounts[to], amount), Metadata: map[string]string{"key": key}}
}

// TestCrashChild is the child half of TestCrash; run on its own it skips.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	var plan crashPlan
	b, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, db, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		mu.Lock()
		defer mu.Unlock()
		// One write per line: os.Stdout is unbuffered, and a pipe write
		// this small is atomic, so a kill never leaves half a line.
		if _, err := os.Stdout.WriteString(line); err != nil {
			os.Exit(3)
		}
	}
	send := func(key string) {
		say("SEND %s", key)
		tr, err := l.Transfer(ctx, crashRequest(key, plan.Accounts))
		if err != nil {
			say("NACK %s %s", key, errors.CodeOf(err))
			return
		}
		say("ACK %s %s", key, tr.ID)
	}
	say("READY")
	keys := make(chan string)
	go func() {
		for _, k := range plan.Retry {
			keys <- k
		}
		for n := 0; ; n++ {
			keys <- fmt.Sprintf("k-%d-%d", plan.Run, n)
		}
	}()
	// Work until killed; the deadline only guards against a parent that
	// died first.
	deadline := time.Now().Add(20 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				send(<-keys)
			}
		})
	}
	wg.Wait()
	l.Close()
	db.Close()
}

// crashLog is what the parent has learnt from its children's output.
type crashLog struct {
	sent  map[string]bool   // keys some child sent
	acked map[string]string // key -> transfer id acknowledged
	nack  map[string]string // key -> error code of its last refusal
	lines int
}

func (c *crashLog) read(t *testing.T, run int, r io.Reader, ready chan<- struct{}) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "READY":
			close(ready)
		case len(f) == 2 && f[0] == "SEND":
			c.sent[f[1]] = true
		case len(f) == 3 && f[0] == "ACK":
			c.lines++
			if prev, ok := c.acked[f[1]]; ok && prev != f[2] {
				t.Errorf("run %d: key %s acknowledged as transfer %s, and before as %s", run, f[1], f[2], prev)
			}
			c.acked[f[1]] = f[2]
			delete(c.nack, f[1])
		case len(f) == 3 && f[0] == "NACK":
			c.lines++
			if f[2] != string(errors.InsufficientFunds) {
				t.Errorf("run %d: key %s refused with %s", run, f[1], f[2])
			}
			if _, ok := c.acked[f[1]]; ok {
				t.Errorf("run %d: acknowledged key %s refused on retry with %s", run, f[1], f[2])
			}
			c.nack[f[1]] = f[2]
		}
	}
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashSeedEnv, err)
		}
	}
	t.Logf("seed %d (set %s to repeat)", seed, crashSeedEnv)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	ctx := t.Context()

	// The accounts: a funding account and four customers with £1,000 each.
	var plan crashPlan
	func() {
		db, err := sqlite.Open(ctx, dir, "ledger")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		l, err := ledger.Open(ctx, db, ledger.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fund := mustAccount(t, l, "fund", ledger.RuleNone, 0)
		plan.Accounts = []string{fund}
		for i := range 4 {
			id := mustAccount(t, l, fmt.Sprintf("customer-%d", i), ledger.RuleLimit, 0)
			mustTransfer(t, l, fmt.Sprintf("fund-%d", i), fund, id, 100000)
			plan.Accounts = append(plan.Accounts, id)
		}
	}()
	const setupWrites = 1 + 4 + 4

	log := &crashLog{sent: map[string]bool{}, acked: map[string]string{}, nack: map[string]string{}}
	runs := 5 + rng.IntN(4)
	inFlightAtKill := 0
	for run := 1; run <= runs; run++ {
		// Retry every key whose fate the parent does not know, and some
		// acknowledged ones.
		plan.Run, plan.Retry = run, nil
		for k := range log.sent {
			if _, ok := log.acked[k]; !ok {
				if _, ok := log.nack[k]; !ok {
					plan.Retry = append(plan.Retry, k)
				}
			}
		}
		inFlightAtKill += len(plan.Retry)
		var acked []string
		for k := range log.acked {
			acked = append(acked, k)
		}
		slices.Sort(acked)
		for range min(len(acked), 10) {
			plan.Retry = append(plan.Retry, acked[rng.IntN(len(acked))])
		}
		slices.Sort(plan.Retry)
		b, _ := json.Marshal(plan)
		if err := os.WriteFile(filepath.Join(dir, "plan.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}

		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		answered := log.lines // the reader owns log until readDone
		ready := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			log.read(t, run, out, ready)
		}()
		select {
		case <-ready:
		case <-readDone:
			cmd.Wait()
			t.Fatalf("run %d: child exited before it was ready: %s", run, stderr.String())
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: child not ready after 20s: %s", run, stderr.String())
		}
		time.Sleep(time.Duration(50+rng.IntN(351)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("run %d: kill: %v", run, err)
		}
		<-readDone
		err = cmd.Wait()
		if st := cmd.ProcessState; st == nil || st.Exited() {
			t.Fatalf("run %d: the child was not killed but exited (%v): %s", run, err, stderr.String())
		}
		t.Logf("run %d: %d keys retried, %d answers before SIGKILL", run, len(plan.Retry), log.lines-answered)
	}
	if len(log.acked) < 20 {
		t.Fatalf("only %d writes acknowledged in %d runs: the test exercised little", len(log.acked), runs)
	}

	// Recover, and account for everything.
	db, err := sqlite.Open(ctx, dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := openLedger(t, db, ledger.Config{})

	t.Run("every acknowledged transfer is stored once with its id", func(t *testing.T) {
		for key, id := range log.acked {
			var ids []string
			rows, err := db.Read.QueryContext(ctx, db.Rebind(`SELECT id FROM transfers WHERE key = ?`), key)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, s)
			}
			rows.Close()
			if len(ids) != 1 || ids[0] != id {
				t.Errorf("acknowledged %s as %s; stored as %v", key, id, ids)
				continue
			}
			tr, err := l.GetTransfer(ctx, id)
			if err != nil {
				t.Errorf("GetTransfer(%s) acknowledged for %s: %v", id, key, err)
				continue
			}
			if want := crashRequest(key, plan.Accounts); tr.Key != key || !slices.Equal(tr.Legs, want.Legs) {
				t.Errorf("transfer %s acknowledged for %s is %+v, want legs %v", id, key, *tr, want.Legs)
			}
		}
	})

	t.Run("retrying any key after the crashes has no new effect", func(t *testing.T) {
		before := countRows(t, db)
		for key, id := range log.acked {
			tr, err := l.Transfer(ctx, crashRequest(key, plan.Accounts))
			if err != nil || tr.ID != id {
				t.Errorf("retry of acknowledged %s: got %v, %v; want transfer %s", key, tr, err, id)
			}
		}
		if after := countRows(t, db); after != before {
			t.Errorf("retries of acknowledged keys changed the tables: %+v -> %+v", before, after)
		}
		// Keys in flight at the last kill: each now takes effect at most
		// once, however often it is sent.
		for key := range log.sent {
			if _, ok := log.acked[key]; ok {
				continue
			}
			first, err1 := l.Transfer(ctx, crashRequest(key, plan.Accounts))
			again, err2 := l.Transfer(ctx, crashRequest(key, plan.Accounts))
			switch {
			case err1 == nil && (err2 != nil || again.ID != first.ID):
				t.Errorf("key %s: retried as %s, then %v, %v", key, first.ID, again, err2)
			case err1 != nil && !errors.Is(err1, errors.InsufficientFunds):
				t.Errorf("key %s: %v", key, err1)
			}
		}
	})

	t.Run("the books balance and every write has its event", func(t *testing.T) {
		verify(t, db)
		checkStored(t, db)
		// Rebuild each balance from the stored transfers themselves.
		want := map[string]int64{}
		rows, err := db.Read.QueryContext(ctx, `SELECT key, legs FROM transfers WHERE kind = 'transfer'`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var key, legsJSON string
			if err := rows.Scan(&key, &legsJSON); err != nil {
				t.Fatal(err)
			}
			var legs []ledger.Leg
			if err := json.Unmarshal([]byte(legsJSON), &legs); err != nil {
				t.Fatalf("legs of %s: %v", key, err)
			}
			if !strings.HasPrefix(key, "fund-") && !log.sent[key] {
				t.Errorf("transfer %s stored, but no child sent it", key)
			}
			for _, leg := range legs {
				want[leg.AccountID] += leg.Amount
			}
			n++
		}
		rows.Close()
		var total int64
		for _, id := range plan.Accounts {
			b, err := l.Balance(ctx, id, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			total += b.Posted
			if b.Posted != want[id] || b.Pending != 0 {
				t.Errorf("account %s: posted %d pending %d; its transfers add up to %d", id, b.Posted, b.Pending, want[id])
			}
			if id != plan.Accounts[0] && b.Available < 0 {
				t.Errorf("account %s below its limit: %+v", id, *b)
			}
		}
		if total != 0 {
			t.Errorf("balances sum to %d, not zero", total)
		}
		c := countRows(t, db)
		if c.Transfers != int64(setupWrites+n-4) || c.Outbox != c.Transfers {
			t.Errorf("%d writes recorded (%d transfers, %d setup), %d events", c.Transfers, n, setupWrites, c.Outbox)
		}
		t.Logf("%d runs; %d transfers stored; %d acknowledged; %d in flight at a kill", runs, n-4, len(log.acked), inFlightAtKill)
	})
}
