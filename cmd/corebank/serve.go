package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/rpc"
)

// cardnetService names the ISO 8583 gateway for --service.
const cardnetService = "cardnet"

// runServe runs one service in this process, serving its RPC methods over
// HTTP: the scale-out shape. Point --store at PostgreSQL and --nats-url at
// the JetStream cluster; services it calls are reached over HTTP at
// --ledger-url, --card-url and --authorization-url.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.flags(fs)
	var cc cardConfig
	cc.flags(fs)
	var gc gatewayConfig
	gc.flags(fs)
	services := []string{ledger.Name, card.Name, authorization.Name, cardnetService}
	service := fs.String("service", "", "the service to run: "+strings.Join(services, ", "))
	ledgerURL := fs.String("ledger-url", "", "base URL of the ledger service's HTTP RPC (authorization)")
	cardURL := fs.String("card-url", "", "base URL of the card service's HTTP RPC (authorization)")
	authURL := fs.String("authorization-url", "", "base URL of the authorization service's HTTP RPC (cardnet)")
	currencies := fs.String("settlement-currencies", "GBP", "currencies with a settlement account, comma-separated (authorization)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := gc.check(); err != nil {
		return err
	}
	known := false
	for _, s := range services {
		known = known || s == *service
	}
	if !known {
		return fmt.Errorf("serve: --service must be one of: %s", strings.Join(services, ", "))
	}
	_, clientTLS, err := cfg.tlsConfigs()
	if err != nil {
		return err
	}
	// It calls others as --service: its certificate must say so, or every
	// call it makes would be refused.
	if err := checkClient(clientTLS, "serve --service "+*service, *service,
		map[string]string{"ledger-url": *ledgerURL, "card-url": *cardURL, "authorization-url": *authURL}); err != nil {
		return err
	}
	hc := rpc.HTTPClient(clientTLS)
	remote := func(flagName, raw string) (rpc.Service, error) {
		if raw == "" {
			return nil, fmt.Errorf("serve --service %s needs --%s", *service, flagName)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--%s %q: want http://host:port or https://host:port", flagName, raw)
		}
		return rpc.NewHTTPClient(raw, hc).Filter(rpc.From(*service)), nil
	}

	// The services this one calls, checked before anything starts.
	var lr, cr, ar rpc.Service
	switch *service {
	case authorization.Name:
		if lr, err = remote("ledger-url", *ledgerURL); err != nil {
			return err
		}
		if cr, err = remote("card-url", *cardURL); err != nil {
			return err
		}
	case cardnetService:
		if ar, err = remote("authorization-url", *authURL); err != nil {
			return err
		}
	}

	p, err := startPlatform(ctx, cfg, *service, stderr)
	if err != nil {
		return err
	}
	// The platform closes last; once a stop began, within its grace (the
	// trace exporter's flush, against a hung collector, would take its
	// own timeouts and retries).
	closed := false
	defer func() {
		if !closed {
			p.close(context.Background())
		}
	}()
	closeWithin := func(ctx context.Context, err error) error {
		p.close(ctx)
		closed = true
		return err
	}
	router := rpc.NewRouter()

	// stop stops what this process runs, in order; ready checks it.
	var stop []func(context.Context) error
	var ready []func(context.Context) error
	switch *service {
	case ledger.Name:
		n, err := p.startLedger(ctx, router)
		if err != nil {
			return err
		}
		stop, ready = append(stop, n.stop), append(ready, n.db.Ping)
	case card.Name:
		n, err := p.startCard(ctx, router, cc)
		if err != nil {
			return err
		}
		stop, ready = append(stop, n.stop), append(ready, n.db.Ping)
	case authorization.Name:
		var cs []money.Currency
		for _, c := range strings.Split(*currencies, ",") {
			cs = append(cs, money.Currency(strings.TrimSpace(c)))
		}
		n, err := p.startAuthorization(ctx, router, &card.Client{RPC: cr}, &ledger.Client{RPC: lr}, cs)
		if err != nil {
			return err
		}
		stop, ready = append(stop, n.stop), append(ready, n.db.Ping)
	case cardnetService:
		n, err := p.startGateway(gc, &authorization.Client{RPC: ar})
		if err != nil {
			return err
		}
		stop = append(stop, n.stop)
		p.log.Info("ISO 8583 gateway listening", "addr", n.addr())
	}
	stopAll := func(ctx context.Context) error {
		var errs []error
		for _, s := range stop {
			errs = append(errs, s(ctx))
		}
		return errors.Join(errs...)
	}

	srv, err := p.serveHTTP(cfg.httpAddr, router, func(ctx context.Context) error {
		var errs []error
		for _, r := range ready {
			errs = append(errs, r(ctx))
		}
		return errors.Join(errs...)
	}, nil)
	if err != nil {
		stopAll(context.Background())
		return err
	}
	p.log.Info("serving", "service", *service, "http", srv.addr(), "store", cfg.storeKind, "mutual_tls", p.serverTLS != nil)
	if p.serverTLS == nil {
		p.log.Warn("the HTTP RPC is plain HTTP: a caller's name is its claim, and any peer that reaches this port may claim any; give --tls-cert, --tls-key and --tls-ca, or keep the port on a network only corebank's services reach")
	}
	// The grace period starts when the stop does, not when the process did.
	grace := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), cfg.grace)
	}
	select {
	case <-ctx.Done():
		sctx, cancel := grace()
		defer cancel()
		// HTTP first, so that no RPC reaches a stopped service; the
		// gateway's stop drains its ISO 8583 connections itself.
		// HTTP gets half the grace, then its stalled connections are
		// cut, so that the services keep time to drain and flush.
		hctx, hcancel := context.WithTimeout(sctx, cfg.grace/2)
		defer hcancel()
		return closeWithin(sctx, errors.Join(srv.stop(hctx), stopAll(sctx)))
	case err := <-srv.done:
		sctx, cancel := grace()
		defer cancel()
		return closeWithin(sctx, errors.Join(fmt.Errorf("http server: %w", err), stopAll(sctx)))
	}
}
