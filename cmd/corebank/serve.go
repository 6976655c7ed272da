package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/rpc"
)

// runServe runs one service in this process, serving its RPC methods over
// HTTP: the scale-out shape. Point --store at PostgreSQL and --nats-url at
// the JetStream cluster.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.flags(fs)
	service := fs.String("service", "", "the service to run: ledger")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *service != ledger.Name {
		return fmt.Errorf("serve: --service must be one of: %s", ledger.Name)
	}
	p, err := startPlatform(ctx, cfg, *service, stderr)
	if err != nil {
		return err
	}
	defer p.close(context.Background())
	router := rpc.NewRouter()
	ln, err := p.startLedger(ctx, router)
	if err != nil {
		return err
	}
	srv, err := p.serveHTTP(cfg.httpAddr, router, func(ctx context.Context) error { return ln.db.Ping(ctx) }, nil)
	if err != nil {
		ln.stop(context.Background())
		return err
	}
	p.log.Info("serving", "service", *service, "http", srv.addr(), "store", cfg.storeKind)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	select {
	case <-ctx.Done():
		return errors.Join(srv.stop(sctx), ln.stop(sctx))
	case err := <-srv.done:
		return errors.Join(fmt.Errorf("http server: %w", err), ln.stop(sctx))
	}
}
