package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/rpc"
)

// shutdownGrace bounds a clean shutdown: drain, flush, close.
const shutdownGrace = 10 * time.Second

// runDemo runs the embedded shape: every service in this process on SQLite
// and an in-process NATS JetStream, with demo accounts and a trickle of
// payments so there is something to watch.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.flags(fs)
	var cc cardConfig
	cc.flags(fs)
	var gc gatewayConfig
	gc.flags(fs)
	every := fs.Duration("activity", 2*time.Second, "interval between demo payments; 0 turns them off")
	if err := parse(fs, args); err != nil {
		return err
	}
	// The demo keeps generated card keys under --data; production takes
	// them from a KMS or HSM through the environment (serve requires them).
	if err := cc.demoKeys(cfg.dataDir); err != nil {
		return err
	}
	p, err := startPlatform(ctx, cfg, "corebank", stderr)
	if err != nil {
		return err
	}
	defer p.close(context.Background())
	router := rpc.NewRouter()
	ln, err := p.startLedger(ctx, router)
	if err != nil {
		return err
	}
	// In-process callers go through the same filters as remote ones.
	inproc := rpc.Chain(router.Service(), p.serverFilters()...)
	client := &ledger.Client{RPC: inproc.Filter(rpc.From("demo"))}

	accts, err := demoAccounts(ctx, client)
	if err != nil {
		ln.stop(context.Background())
		return err
	}
	cn, err := p.startCard(ctx, router, cc)
	if err != nil {
		ln.stop(context.Background())
		return err
	}
	cards := &card.Client{RPC: inproc.Filter(rpc.From("demo"))}
	an, err := p.startAuthorization(ctx, router, &card.Client{RPC: inproc.Filter(rpc.From(authorization.Name))},
		&ledger.Client{RPC: inproc.Filter(rpc.From(authorization.Name))}, []money.Currency{"GBP"})
	if err != nil {
		cn.stop(context.Background())
		ln.stop(context.Background())
		return err
	}
	stopServices := func(ctx context.Context) []error {
		return []error{an.stop(ctx), cn.stop(ctx), ln.stop(ctx)}
	}
	if _, err := demoCards(ctx, cards, accts); err != nil {
		stopServices(context.Background())
		return err
	}
	gn, err := p.startGateway(gc, &authorization.Client{RPC: inproc.Filter(rpc.From("cardnet"))})
	if err != nil {
		stopServices(context.Background())
		return err
	}
	srv, err := p.serveHTTP(cfg.httpAddr, router, func(ctx context.Context) error {
		return errors.Join(ln.db.Ping(ctx), cn.db.Ping(ctx), an.db.Ping(ctx))
	}, map[string]http.Handler{"GET /{$}": demoIndex(client, accts)})
	if err != nil {
		gn.stop(context.Background())
		stopServices(context.Background())
		return err
	}

	// A consumer of the ledger's events: proof that outbox → relay →
	// JetStream → durable consumer works, printed as it happens.
	subCtx, stopSub := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	go func() {
		subDone <- p.bus.Subscribe(subCtx, "demo-feed", []string{"ledger.>"}, func(ctx context.Context, e event.Event) error {
			p.log.Info("event", "topic", e.Topic, "id", e.ID, "summary", summarize(e))
			return nil
		})
	}()

	fmt.Fprintf(stdout, `corebank demo is running.

  HTTP        http://%[1]s/            demo accounts and balances
  RPC         http://%[1]s/rpc/{ledger,card,authorization}/{method}   (POST JSON)
  ISO 8583    %[3]s   card network gateway (2-byte length header, ISO 8583:1987 ASCII)
  metrics     http://%[1]s/metrics
  health      http://%[1]s/healthz  http://%[1]s/readyz
  data        %[2]s   (SQLite: ledger.db, card.db, authorization.db; NATS JetStream: nats/)
  events      NATS JetStream in this process, stream CORE

Press Ctrl-C to stop.
`, srv.addr(), absPath(cfg.dataDir), gn.addr())

	actDone := make(chan struct{})
	go func() {
		defer close(actDone)
		if *every > 0 {
			demoActivity(ctx, client, accts, *every, p)
		}
	}()
	<-ctx.Done()
	p.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	<-actDone
	// The card network first (drain in flight, reconcile late decisions),
	// then HTTP, then the services: each stops its writes, flushes its
	// outbox and closes its store.
	errs := []error{gn.stop(sctx), srv.stop(sctx)}
	errs = append(errs, stopServices(sctx)...)
	stopSub()
	<-subDone
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "corebank demo stopped cleanly.")
	return nil
}

// demoAccount is one of the demo's customers.
type demoAccount struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// demoAccounts opens the demo's accounts, idempotently: the keys are fixed,
// so a restart finds the same accounts.
func demoAccounts(ctx context.Context, l ledger.Service) ([]demoAccount, error) {
	funding, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "demo-account-funding", Currency: "GBP", Owner: "bank:funding", Rule: ledger.RuleNone})
	if err != nil {
		return nil, fmt.Errorf("demo accounts: %w", err)
	}
	out := []demoAccount{{Name: "Bank funding", ID: funding.ID}}
	for i, name := range []string{"Ada Lovelace", "Alan Turing", "Grace Hopper"} {
		a, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "demo-account-" + strconv.Itoa(i), Currency: "GBP", Owner: "customer:" + name, Rule: ledger.RuleLimit, OverdraftLimit: 50_00})
		if err != nil {
			return nil, fmt.Errorf("demo accounts: %w", err)
		}
		if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: "demo-topup-" + strconv.Itoa(i), Legs: []ledger.Leg{
			{AccountID: funding.ID, Amount: -1000_00, Currency: "GBP"},
			{AccountID: a.ID, Amount: 1000_00, Currency: "GBP"},
		}, Metadata: map[string]string{"description": "welcome top-up"}}); err != nil {
			return nil, fmt.Errorf("demo accounts: %w", err)
		}
		out = append(out, demoAccount{Name: name, ID: a.ID})
	}
	return out, nil
}

// demoActivity sends a small payment between customers every interval, the
// way a card payment moves money: a hold, then its posting.
func demoActivity(ctx context.Context, l ledger.Service, accts []demoAccount, every time.Duration, p *platform) {
	t := time.NewTicker(every)
	defer t.Stop()
	customers := accts[1:]
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		from, to := customers[rand.IntN(len(customers))], customers[rand.IntN(len(customers))]
		if from.ID == to.ID {
			continue
		}
		amount := int64(100 + rand.IntN(2000))
		key := "demo-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		h, err := l.PlaceHold(ctx, ledger.PlaceHoldRequest{Key: key + "-hold", AccountID: from.ID, Destination: to.ID, Amount: amount, Currency: "GBP", ExpiresAt: time.Now().Add(7 * 24 * time.Hour)})
		if err == nil {
			_, err = l.PostHold(ctx, ledger.PostHoldRequest{Key: key + "-post", HoldID: h.ID, Amount: amount})
		}
		if err != nil && ctx.Err() == nil {
			p.log.Warn("demo payment declined", "from", from.Name, "to", to.Name, "amount", money.Format(amount, "GBP"), "err", err)
		}
	}
}

// summarize renders a ledger event for the demo's log.
func summarize(e event.Event) string {
	var c ledger.ChangeEvent
	if json.Unmarshal(e.Payload, &c) != nil {
		return ""
	}
	switch {
	case c.Hold != nil:
		return fmt.Sprintf("hold %s %s on %s: %s", c.Hold.ID, c.Transfer.Kind, c.Hold.AccountID, money.Format(c.Hold.Authorized, c.Hold.Currency))
	case len(c.Transfer.Legs) > 0:
		l := c.Transfer.Legs[len(c.Transfer.Legs)-1]
		return fmt.Sprintf("transfer %s: %s to %s", c.Transfer.ID, money.Format(l.Amount, l.Currency), l.AccountID)
	}
	return ""
}

// demoIndex serves the demo's accounts and balances as JSON.
func demoIndex(l ledger.Service, accts []demoAccount) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		type row struct {
			demoAccount
			Balance *ledger.Balance `json:"balance"`
		}
		var rows []row
		for _, a := range accts {
			b, err := l.Balance(r.Context(), a.ID, time.Time{})
			if err != nil {
				http.Error(w, "balance unavailable", http.StatusServiceUnavailable)
				return
			}
			rows = append(rows, row{a, b})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"accounts": rows})
	})
}
