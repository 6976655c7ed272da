package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store/sqlite"
)

// The embedded card path, SIGKILLed under load again and again: every
// answer the network got before a kill stands afterwards (a retransmission
// gets the same code and approval code), nothing is held twice, each
// account holds exactly what was approved, and the ledger's invariants
// hold. Approvals are answered once their hold is durable and their record
// is finished behind the answer (AnswerEarly), so a kill often lands
// between the two; recovery at the next start completes them.
func TestCardPathSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process several times")
	}
	dir := t.TempDir()
	httpAddr, isoAddr := freeAddr(t), freeAddr(t)
	start := func() *served {
		return startCorebank(t, nil, httpAddr, "demo", "--data", dir, "--http", httpAddr, "--iso8583", isoAddr,
			"--sim-rate", "0", "--expire-every", "0", "--log-level", "error")
	}
	proc := start()
	base := "http://" + httpAddr

	// Customers, funded, with a card each, through the demo's RPC.
	ctx := rpc.WithCaller(context.Background(), callerAPI)
	l := &ledger.Client{RPC: rpc.NewHTTPClient(base, &http.Client{})}
	cs := &card.Client{RPC: rpc.NewHTTPClient(base, &http.Client{})}
	funding, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "kill-funding", Currency: "GBP", Rule: ledger.RuleNone})
	if err != nil {
		t.Fatal(err)
	}
	const customers, balance = 12, 20_000_00
	var issued []card.Card
	for i := range customers {
		a, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: fmt.Sprintf("kill-%d", i), Currency: "GBP", Owner: fmt.Sprintf("customer:kill%d", i), Rule: ledger.RuleLimit})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: fmt.Sprintf("kill-fund-%d", i), Legs: []ledger.Leg{
			{AccountID: funding.ID, Amount: -balance, Currency: "GBP"}, {AccountID: a.ID, Amount: balance, Currency: "GBP"},
		}}); err != nil {
			t.Fatal(err)
		}
		c, err := cs.Issue(ctx, card.IssueRequest{Key: fmt.Sprintf("kill-card-%d", i), AccountID: a.ID, CustomerID: fmt.Sprintf("cus_kill%d", i), Currency: "GBP"})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, *c)
	}
	details, err := demoCardDetails(ctx, cs, issued)
	if err != nil {
		t.Fatal(err)
	}

	spec := cardnet.DefaultSpec()
	type sent struct {
		req            *cardnet.Request
		account        string
		code, authCode string // the first answer the network got; "" if none yet
	}
	var (
		mu   sync.Mutex
		all  []*sent
		stan int
	)
	purchase := func(rng *rand.Rand) *sent {
		d := details[rng.IntN(len(details))]
		mu.Lock()
		stan++
		n := stan
		mu.Unlock()
		return &sent{account: d.AccountID, req: &cardnet.Request{
			MTI: cardnet.MTIAuthorizationRequest, PAN: cardnet.PAN(d.PAN), ProcessingCode: "000000",
			Amount: 1 + rng.Int64N(60_00), Currency: "GBP",
			TransmissionTime: cardnet.DateTime{Month: 11, Day: 23, Hour: 10, Minute: n / 60 % 60, Second: n % 60},
			STAN:             fmt.Sprintf("%06d", n), RRN: fmt.Sprintf("KILL%08d", n),
			Expiry: cardnet.Expiry{Year: d.ExpiryYear, Month: time.Month(d.ExpiryMonth)},
			MCC:    "5411", POSEntryMode: "071", POSCondition: "00", AcquirerID: "424242",
			TerminalID: "TERM0001", MerchantID: "MERCHANT0000001",
			Merchant: cardnet.Merchant{Name: "CORNER SHOP", City: "LEEDS", Country: "GB"},
			CVC2:     cardnet.CVC(d.CVC),
		}}
	}
	dial := func() *cardnet.Client {
		t.Helper()
		c, err := (&cardnet.Dialer{Spec: spec}).Dial(context.Background(), isoAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := signOn(context.Background(), c, spec, 1); err != nil {
			t.Fatal(err)
		}
		return c
	}
	send := func(c *cardnet.Client, r *cardnet.Request) (*cardnet.Message, error) {
		m, err := r.Message(spec)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Send(sctx, m)
	}

	const rounds, senders = 4, 32
	for round := range rounds {
		conn := dial()
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(s)))
				for {
					p := purchase(rng)
					mu.Lock()
					all = append(all, p)
					mu.Unlock()
					resp, err := send(conn, p.req)
					if err != nil {
						return // killed: this one's answer never came
					}
					mu.Lock()
					p.code, p.authCode = resp.Get(39), resp.Get(38)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		if err := proc.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-proc.exited
		wg.Wait()
		conn.Close()
		proc = start()

		// The network retransmits what it sent (as 0101 repeats): an
		// answer given before the kill is given again; one lost with the
		// kill is given now, for the first time.
		conn = dial()
		answered := 0
		mu.Lock()
		pending := append([]*sent(nil), all...)
		mu.Unlock()
		for _, p := range pending {
			repeat := *p.req
			repeat.MTI = "0101"
			resp, err := send(conn, &repeat)
			if err != nil {
				t.Fatalf("round %d: retransmission of stan %s: %v", round, p.req.STAN, err)
			}
			code, authCode := resp.Get(39), resp.Get(38)
			if p.code == "" {
				p.code, p.authCode = code, authCode
				continue
			}
			answered++
			if code != p.code || authCode != p.authCode {
				t.Errorf("round %d: stan %s answered %s/%q before the kill, %s/%q after", round, p.req.STAN, p.code, p.authCode, code, authCode)
			}
		}
		conn.Close()
		t.Logf("round %d: %d requests so far, %d answered before a kill", round, len(pending), answered)
		if answered == 0 {
			t.Fatalf("round %d: no answer came before a kill: the test proves nothing", round)
		}
	}

	// Each account holds exactly what was approved.
	held := make(map[string]int64)
	approved := 0
	for _, p := range all {
		switch p.code {
		case string(cardnet.Approved):
			held[p.account] += p.req.Amount
			approved++
		case string(cardnet.NotSufficientFunds):
		default:
			t.Errorf("stan %s answered %s, want 00 or 51", p.req.STAN, p.code)
		}
	}
	if approved == 0 {
		t.Fatal("nothing approved: the test proves nothing")
	}
	for _, d := range details {
		b, err := l.Balance(ctx, d.AccountID, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Posted != balance || b.Pending != held[d.AccountID] {
			t.Errorf("account %s: posted %d pending %d, want %d and %d", d.AccountID, b.Posted, b.Pending, balance, held[d.AccountID])
		}
	}
	proc.stop(t)
	db, err := sqlite.Open(context.Background(), dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := ledger.Verify(context.Background(), db); err != nil {
		t.Errorf("ledger.Verify: %v", err)
	}
	t.Logf("%d requests, %d approved, over %d kills", len(all), approved, rounds)
}
