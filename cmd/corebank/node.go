package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/event"
	enats "github.com/corebank/corebank/event/nats"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/obs"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/sqlite"
)

// config is what every process shape shares. Its zero-config defaults are
// the embedded shape's.
type config struct {
	httpAddr     string
	dataDir      string
	storeKind    string
	postgresURL  string
	natsURL      string
	otlpEndpoint string
	logLevel     string
	logJSON      bool
	rpcTimeout   time.Duration
	expireEvery  time.Duration
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "HTTP address for the API, RPC, /metrics and health")
	fs.StringVar(&c.dataDir, "data", "./corebank-data", "directory for SQLite databases and the embedded NATS store")
	fs.StringVar(&c.storeKind, "store", "sqlite", "sqlite (embedded, in --data) or postgres (--postgres-url)")
	fs.StringVar(&c.postgresURL, "postgres-url", "", "PostgreSQL URL for --store postgres (postgres://user@host:5432/db)")
	fs.StringVar(&c.natsURL, "nats-url", "", "external NATS JetStream URL; empty runs NATS inside this process")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP collector URL for traces (http://host:4318); empty keeps traces in memory only")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log JSON lines instead of text")
	fs.DurationVar(&c.expireEvery, "expire-every", time.Minute, "how often to release holds past their expiry; 0 never")
	fs.DurationVar(&c.rpcTimeout, "rpc-timeout", 5*time.Second, "default deadline of an RPC that arrives without one")
}

// platform is the shared machinery of a process: logs, metrics, traces, the
// event bus.
type platform struct {
	cfg     config
	log     *slog.Logger
	reg     *prometheus.Registry
	tracing *obs.Tracing
	nats    *enats.Server // nil when the bus is external
	bus     *enats.Conn
}

func startPlatform(ctx context.Context, cfg config, service string, stderr io.Writer) (*platform, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	p := &platform{cfg: cfg, log: obs.NewLogger(stderr, level, cfg.logJSON), reg: obs.NewRegistry()}
	var err error
	p.tracing, err = obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: service, OTLPEndpoint: cfg.otlpEndpoint, Recent: 200})
	if err != nil {
		return nil, err
	}
	if cfg.natsURL == "" {
		// The server's start-up notices are noise in a terminal; its
		// warnings and errors are not.
		natsLog := obs.NewLogger(stderr, max(level, slog.LevelWarn), cfg.logJSON).With("component", "nats")
		p.nats, err = enats.Embedded(enats.EmbeddedConfig{Dir: filepath.Join(cfg.dataDir, "nats"), Log: natsLog})
		if err != nil {
			p.close(ctx)
			return nil, err
		}
		p.bus, err = enats.ConnectEmbedded(p.nats, enats.WithLogger(p.log), enats.WithName(service))
	} else {
		p.bus, err = enats.Connect(cfg.natsURL, enats.WithLogger(p.log), enats.WithName(service))
	}
	if err != nil {
		p.close(ctx)
		return nil, err
	}
	if err := p.bus.EnsureStream(ctx, enats.DefaultStream, enats.DefaultSubjects(), 1); err != nil {
		p.close(ctx)
		return nil, err
	}
	return p, nil
}

func (p *platform) close(ctx context.Context) {
	if p.bus != nil {
		p.bus.Close()
	}
	if p.nats != nil {
		p.nats.Shutdown()
	}
	if p.tracing != nil {
		p.tracing.Shutdown(ctx)
	}
}

// openStore opens service's database in the configured engine.
func (p *platform) openStore(ctx context.Context, service string) (*store.DB, error) {
	switch p.cfg.storeKind {
	case "sqlite":
		return sqlite.Open(ctx, p.cfg.dataDir, service)
	case "postgres":
		if p.cfg.postgresURL == "" {
			return nil, fmt.Errorf("--store postgres needs --postgres-url")
		}
		return postgres.Open(ctx, p.cfg.postgresURL, service)
	}
	return nil, fmt.Errorf("--store must be sqlite or postgres, not %q", p.cfg.storeKind)
}

// serverFilters is the order every served request passes the platform's
// filters in, written once: the trace span outermost, metrics inside it (so
// they time the rest), the default deadline, and recovery closest to the
// handler, so a panic reaches the span and the metrics as an Internal error.
func (p *platform) serverFilters() []rpc.Filter {
	return []rpc.Filter{
		rpc.Trace(p.tracing.Tracer("corebank/rpc")),
		rpc.Metrics(p.reg),
		rpc.Deadline(p.cfg.rpcTimeout),
		rpc.Recover(p.log),
	}
}

// ledgerNode is the ledger service with its store and outbox relay.
type ledgerNode struct {
	db         *store.DB
	ledger     *ledger.Ledger
	relay      *event.Relay
	relayDone  chan error
	expireDone chan struct{}
	cancel     context.CancelFunc
}

// startLedger opens the ledger on its store, starts its outbox relay and
// hold expiry, and serves its methods on router.
func (p *platform) startLedger(ctx context.Context, router *rpc.Router) (*ledgerNode, error) {
	db, err := p.openStore(ctx, ledger.Name)
	if err != nil {
		return nil, err
	}
	relay := &event.Relay{DB: db, Publisher: p.bus, Log: p.log.With("component", "relay", "service", ledger.Name), Registerer: p.reg}
	l, err := ledger.Open(ctx, db, ledger.Config{Notify: relay.Notify, Log: p.log.With("service", ledger.Name), Metrics: p.reg})
	if err != nil {
		db.Close()
		return nil, err
	}
	ledger.Register(router, l)
	rctx, cancel := context.WithCancel(context.Background())
	n := &ledgerNode{db: db, ledger: l, relay: relay, relayDone: make(chan error, 1), expireDone: make(chan struct{}), cancel: cancel}
	go func() { n.relayDone <- relay.Run(rctx) }()
	go func() {
		defer close(n.expireDone)
		expireHolds(rctx, l, p.cfg.expireEvery, p.log.With("service", ledger.Name, "job", "expire_holds"))
	}()
	return n, nil
}

// expireHolds releases holds past their expiry, every interval. Expiry is
// idempotent per hold, so several ledger processes may run it at once; the
// lock package will make it one at a time once there is a reason to.
func expireHolds(ctx context.Context, l ledger.Service, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			hs, err := l.ExpireHolds(ctx, time.Now(), 1000)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("expiring holds failed", "err", err)
				}
				break
			}
			if len(hs) > 0 {
				log.Info("holds expired", "count", len(hs))
			}
			if len(hs) < 1000 {
				break
			}
		}
	}
}

// stop drains the ledger's queued writes, publishes what is in the outbox,
// and closes the store.
func (n *ledgerNode) stop(ctx context.Context) error {
	n.cancel()
	<-n.expireDone
	errs := []error{n.ledger.Close()}
	if err := n.relay.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush outbox: %w", err))
	}
	<-n.relayDone
	errs = append(errs, n.db.Close())
	return errors.Join(errs...)
}

// httpServer serves the RPC router, /metrics and health on one listener.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

func (p *platform) serveHTTP(addr string, router *rpc.Router, ready func(context.Context) error, extra map[string]http.Handler) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /rpc/", rpc.NewHTTPHandler(rpc.Chain(router.Service(), p.serverFilters()...), rpc.ErrorLog(p.log)))
	mux.Handle("GET /metrics", obs.MetricsHandler(p.reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	for path, h := range extra {
		mux.Handle(path, h)
	}
	s := &httpServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

func (s *httpServer) addr() string { return s.ln.Addr().String() }

func (s *httpServer) stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if e := <-s.done; err == nil {
		err = e
	}
	return err
}

// absPath is for printing where things are.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
