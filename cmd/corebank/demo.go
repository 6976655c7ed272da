package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
)

// runDemo runs the embedded shape: every service in this process on SQLite
// and an in-process NATS JetStream, with demo accounts and cards, and the
// card-network simulator paying with those cards so there is something to
// watch.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.flags(fs)
	var cc cardConfig
	cc.flags(fs)
	var gc gatewayConfig
	gc.flags(fs)
	simRate := fs.Float64("sim-rate", 2, "card payments per second the built-in card network simulator sends the gateway; 0 turns it off")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gc.check(); err != nil {
		return err
	}
	if err := checkRate("--sim-rate", *simRate); err != nil {
		return err
	}
	// The demo keeps generated card keys under --data; production takes
	// them from a KMS or HSM through the environment (serve requires them).
	if err := cc.demoKeys(cfg.dataDir); err != nil {
		return err
	}
	st, err := startStack(ctx, cfg, cc, gc, []money.Currency{"GBP"}, stderr)
	if err != nil {
		return err
	}
	defer st.stop(context.Background())
	p := st.p
	client := &ledger.Client{RPC: st.from(callerAPI)}
	cards := &card.Client{RPC: st.from(callerAPI)}
	accts, err := demoAccounts(ctx, client)
	if err != nil {
		return err
	}
	issued, err := demoCards(ctx, cards, accts)
	if err != nil {
		return err
	}
	settlement, err := settlementAccounts(ctx, client, []money.Currency{"GBP"})
	if err != nil {
		return err
	}
	listed := append(slices.Clip(accts), demoAccount{Name: "Card settlement", ID: settlement["GBP"]})
	srv, err := p.serveHTTP(cfg.httpAddr, st.router, func(ctx context.Context) error {
		return errors.Join(st.ledger.db.Ping(ctx), st.card.db.Ping(ctx), st.auth.db.Ping(ctx), st.clearing.db.Ping(ctx))
	}, map[string]http.Handler{"GET /{$}": demoIndex(client, listed)})
	if err != nil {
		return err
	}
	if p.serverTLS == nil && !onLoopback(srv.addr()) {
		p.log.Warn("the demo's HTTP RPC is plain HTTP on an address other machines may reach: a caller's name is its claim, so any peer may claim api and reveal the demo cards' details; keep --http on 127.0.0.1, or give --tls-cert, --tls-key and --tls-ca", "http", srv.addr())
	}

	// A consumer of the services' events: proof that outbox → relay →
	// JetStream → durable consumer works, printed as it happens.
	subCtx, stopSub := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	go func() {
		subDone <- p.bus.Subscribe(subCtx, "demo-feed", []string{"ledger.>", "authorization.>"}, func(ctx context.Context, e event.Event) error {
			if strings.HasPrefix(e.Topic, "authorization.") {
				p.log.Info(summarizePayment(e), "topic", e.Topic, "id", e.ID)
				return nil
			}
			p.log.Info("event", "topic", e.Topic, "id", e.ID, "summary", summarize(e))
			return nil
		})
	}()

	fmt.Fprintf(stdout, `corebank demo is running.

  HTTP        http://%[1]s/            demo accounts and balances
  RPC         http://%[1]s/rpc/{ledger,card,authorization,clearing}/{method}   (POST JSON, header Corebank-Caller: operator or api)
  ISO 8583    %[3]s   card network gateway (2-byte length header, %[4]s)
  metrics     http://%[1]s/metrics
  health      http://%[1]s/healthz  http://%[1]s/readyz
  traces      http://%[1]s/debug/traces   (the last 200 spans)
  data        %[2]s   (%[5]s)
  events      %[6]s, stream CORE

Press Ctrl-C to stop.
`, srv.addr(), absPath(cfg.dataDir), st.gateway.addr(), specName(gc.specFile), storeName(cfg), busName(cfg))

	// The simulated card network pays with the demo cards until the demo
	// stops. Their details are revealed in process and never leave it.
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		if *simRate <= 0 {
			return
		}
		details, err := demoCardDetails(ctx, cards, issued)
		if err != nil {
			p.log.Warn("demo simulator not started", "err", err)
			return
		}
		// A session an hour, as a network signs on for a business day:
		// each run's result (its approvals, for its clearing file) is let
		// go at its end, so a demo left running does not grow.
		for ctx.Err() == nil {
			s := &sim.Simulator{Addr: loopback(st.gateway.addr()), Cards: simCards(details, "GBP"), Rate: *simRate,
				Duration: time.Hour, Log: p.log.With("component", "sim"), Spec: gc.spec}
			if _, err := s.Run(ctx); err != nil {
				p.log.Warn("demo simulator stopped", "err", err)
				return
			}
		}
	}()
	paydayDone := make(chan struct{})
	go func() {
		defer close(paydayDone)
		demoPayday(ctx, client, accts, 5*time.Second, p)
	}()

	<-ctx.Done()
	p.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
	defer cancel()
	// The simulator signs off first, then the card network's gateway
	// drains (answering what is in flight, reconciling late decisions),
	// then HTTP, then the services stop their writes, flush their outboxes
	// and close their stores.
	// The simulator waits for answers to what it sent; when they are late
	// it could take the whole grace, leaving none to drain the gateway and
	// flush the outboxes. It gets a quarter of it; then the gateway stops
	// under it, which closes its connection and ends its waits.
	<-paydayDone // its calls end with ctx
	simWait, stopSimWait := context.WithTimeout(sctx, cfg.grace/4)
	select {
	case <-simDone:
	case <-simWait.Done():
		p.log.Warn("the demo's card network is still waiting for answers; stopping the gateway under it")
	}
	stopSimWait()
	errs := []error{st.stopGateway(sctx), srv.stop(sctx), st.stopServices(sctx)}
	// Spans not yet exported get what is left of the grace, not a hung
	// collector's timeouts and retries.
	st.p.tracing.Shutdown(sctx)
	<-simDone
	stopSub()
	<-subDone
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "corebank demo stopped cleanly.")
	return nil
}

// loopback is addr with an unspecified host ("", "0.0.0.0", "::")
// replaced by 127.0.0.1, for dialling a listener of this process.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
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

// demoPayday tops up, every interval, each customer whose available
// balance has fallen under £200, so the simulator's payments keep being
// approved: the demo's holds are never cleared.
func demoPayday(ctx context.Context, l ledger.Service, accts []demoAccount, every time.Duration, p *platform) {
	t := time.NewTicker(every)
	defer t.Stop()
	funding := accts[0]
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range accts[1:] {
			b, err := l.Balance(ctx, a.ID, time.Time{})
			if err != nil || b.Available >= 200_00 {
				continue
			}
			key := "demo-payday-" + a.ID + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: key, Legs: []ledger.Leg{
				{AccountID: funding.ID, Amount: -1000_00, Currency: "GBP"},
				{AccountID: a.ID, Amount: 1000_00, Currency: "GBP"},
			}, Metadata: map[string]string{"description": "payday"}}); err != nil && ctx.Err() == nil {
				p.log.Warn("demo payday failed", "to", a.Name, "err", err)
			}
		}
	}
}

// summarizePayment renders an authorization event for the demo's log:
// "payment approved £3.50 at OZONE COFFEE, LONDON".
func summarizePayment(e event.Event) string {
	var d authorization.Decision
	if json.Unmarshal(e.Payload, &d) != nil {
		return e.Topic
	}
	what := map[authorization.Kind]string{
		authorization.KindCash: "cash withdrawal", authorization.KindRefund: "refund",
		authorization.KindPreauth: "pre-authorization", authorization.KindIncremental: "incremental authorization",
		authorization.KindAdvice: "stand-in advice", authorization.KindReversal: "reversal",
	}[d.Kind]
	if what == "" && d.MCC == "6011" {
		what = "cash withdrawal" // an ATM's 0200
	} else if what == "" {
		what = "payment"
	}
	amount := d.Amount
	var outcome string
	switch {
	case e.Topic == authorization.TopicReversed:
		outcome = "released"
	case e.Topic == authorization.TopicAdvised:
		outcome = "applied"
	case d.Approved:
		outcome = "approved"
	default:
		outcome, amount = "declined ("+string(d.Reason)+")", d.Requested
	}
	s := what + " " + outcome + " " + formatMoney(amount, d.Currency)
	if d.MerchantName != "" {
		s += " at " + d.MerchantName
		if d.MerchantCity != "" {
			s += ", " + d.MerchantCity
		}
	}
	return s
}

// formatMoney renders an amount for people: "£3.50", "12.00 CHF".
func formatMoney(minor int64, c money.Currency) string {
	if sym, ok := map[money.Currency]string{"GBP": "£", "EUR": "€", "USD": "$"}[c]; ok {
		if minor < 0 {
			return "-" + sym + money.Format(-minor, c)
		}
		return sym + money.Format(minor, c)
	}
	return money.Format(minor, c) + " " + string(c)
}

// summarize renders a ledger event for the demo's log.
func summarize(e event.Event) string {
	if e.Topic == ledger.TopicAccountCreated || e.Topic == ledger.TopicAccountClosed {
		var a ledger.Account
		if json.Unmarshal(e.Payload, &a) != nil {
			return ""
		}
		return fmt.Sprintf("account %s %s (%s, owner %s)", a.ID, map[string]string{ledger.TopicAccountCreated: "opened", ledger.TopicAccountClosed: "closed"}[e.Topic], a.Currency, a.Owner)
	}
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

// onLoopback reports whether addr (host:port) listens on a loopback
// address only.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// specName, storeName and busName say in the demo's banner what it runs
// on, as configured.
func specName(file string) string {
	if file == "" {
		return "ISO 8583:1987 ASCII"
	}
	return "spec " + absPath(file)
}

func storeName(cfg config) string {
	if cfg.storeKind == "postgres" {
		return "PostgreSQL, a schema per service; NATS JetStream: nats/ when in process"
	}
	return "SQLite: ledger.db, card.db, authorization.db, clearing.db; NATS JetStream: nats/"
}

func busName(cfg config) string {
	if cfg.natsURL != "" {
		return "NATS JetStream at " + cfg.natsURL
	}
	return "NATS JetStream in this process"
}
