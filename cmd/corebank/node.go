package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/event"
	enats "github.com/corebank/corebank/event/nats"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
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
	natsReplicas int
	otlpEndpoint string
	tlsCert      string
	tlsKey       string
	tlsCA        string
	logLevel     string
	logJSON      bool
	rpcTimeout   time.Duration
	expireEvery  time.Duration
	holdDays     int
	grace        time.Duration
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "HTTP address for the API, RPC, /metrics and health")
	fs.StringVar(&c.dataDir, "data", "./corebank-data", "directory for SQLite databases and the embedded NATS store")
	fs.StringVar(&c.storeKind, "store", "sqlite", "sqlite (embedded, in --data) or postgres (--postgres-url)")
	fs.StringVar(&c.postgresURL, "postgres-url", "", "PostgreSQL URL for --store postgres (postgres://user@host:5432/db)")
	fs.StringVar(&c.natsURL, "nats-url", "", "external NATS JetStream URL; empty runs NATS inside this process")
	fs.IntVar(&c.natsReplicas, "nats-replicas", 1, "copies of the event stream an external JetStream cluster keeps (3 for a three-node cluster); never lowers an existing stream's")
	c.tlsFlags(fs)
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "OTLP/HTTP collector URL for traces (http://host:4318); empty keeps traces in memory only")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log JSON lines instead of text")
	fs.DurationVar(&c.expireEvery, "expire-every", time.Minute, "how often to release holds past their expiry; 0 never")
	fs.IntVar(&c.holdDays, "hold-days", 7, "days a card authorization's hold reserves funds if no clearing settles it")
	fs.DurationVar(&c.rpcTimeout, "rpc-timeout", 5*time.Second, "default deadline of an RPC that arrives without one")
	fs.DurationVar(&c.grace, "shutdown-grace", 10*time.Second, "how long a stop (SIGINT, SIGTERM) may take to drain and flush, from the signal; keep it under the orchestrator's (Kubernetes terminationGracePeriodSeconds)")
}

// checkAddr refuses a listen address that is not host:port: an empty one
// (a variable like COREBANK_HTTP set but empty) would listen on every
// interface, on a port nobody knows.
func checkAddr(flagName, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("%s %q: want host:port (127.0.0.1:8080; port 0 picks one)", flagName, addr)
	}
	return nil
}

// tlsFlags adds the flags of mutual TLS on the HTTP RPC to fs.
func (c *config) tlsFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate of this process for mutual TLS on the HTTP RPC, with --tls-key and --tls-ca; its subject's Common Name is the caller it proves: serve's --service, or for clearing ingest operator")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM certificates of the authority that signs the services' certificates: callers must present one, and servers are checked against it")
}

// tlsConfigs returns the server and client sides of mutual TLS from the
// --tls-* files, or nils without them.
func (c *config) tlsConfigs() (server, client *tls.Config, err error) {
	if c.tlsCert == "" && c.tlsKey == "" && c.tlsCA == "" {
		return nil, nil, nil
	}
	if c.tlsCert == "" || c.tlsKey == "" || c.tlsCA == "" {
		return nil, nil, fmt.Errorf("--tls-cert, --tls-key and --tls-ca go together")
	}
	pair, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	if !rpc.NamedCaller(pair.Leaf.Subject.CommonName) { // LoadX509KeyPair parsed the leaf
		return nil, nil, fmt.Errorf("--tls-cert: its subject's Common Name must be a caller name (1 to %d characters of [A-Za-z0-9_.:-])", rpc.MaxCallerLen)
	}
	pem, err := os.ReadFile(c.tlsCA)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", c.tlsCA)
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		// Verified when given; required by the RPC handler, not by
		// /metrics and the health checks.
		ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}
	client = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}

// checkClient checks the client side of mutual TLS (nil: none) of a
// process calling as caller: its certificate must name caller, and the
// URLs it calls (flag name → URL; empty ones are skipped) must be https.
// who names the process in the refusal.
func checkClient(c *tls.Config, who, caller string, urls map[string]string) error {
	if c == nil {
		return nil
	}
	if cn := c.Certificates[0].Leaf.Subject.CommonName; cn != caller {
		return fmt.Errorf("--tls-cert: its Common Name is %q, but %s calls others as %q", cn, who, caller)
	}
	for flagName, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.Scheme != "https" && raw != "" {
			return fmt.Errorf("--%s %q: with --tls-cert, want https://host:port", flagName, raw)
		}
	}
	return nil
}

// platform is the shared machinery of a process: logs, metrics, traces, the
// event bus.
type platform struct {
	cfg config
	// serverTLS and clientTLS are mutual TLS's sides (--tls-*), or nil.
	serverTLS, clientTLS *tls.Config
	log                  *slog.Logger
	reg                  *prometheus.Registry
	tracing              *obs.Tracing
	nats                 *enats.Server // nil when the bus is external
	bus                  *enats.Conn
}

func startPlatform(ctx context.Context, cfg config, service string, stderr io.Writer) (*platform, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if cfg.holdDays < 1 || cfg.holdDays > 365 {
		return nil, fmt.Errorf("--hold-days %d: want 1 to 365", cfg.holdDays)
	}
	if cfg.rpcTimeout <= 0 {
		return nil, fmt.Errorf("--rpc-timeout %v: want a positive duration", cfg.rpcTimeout)
	}
	if cfg.grace <= 0 {
		return nil, fmt.Errorf("--shutdown-grace %v: want a positive duration", cfg.grace)
	}
	if err := checkAddr("--http", cfg.httpAddr); err != nil {
		return nil, err
	}
	serverTLS, clientTLS, err := cfg.tlsConfigs()
	if err != nil {
		return nil, err
	}
	if cfg.natsReplicas < 1 || cfg.natsReplicas > 5 || cfg.natsURL == "" && cfg.natsReplicas != 1 {
		return nil, fmt.Errorf("--nats-replicas %d: want 1 to 5 with --nats-url, and 1 for the embedded NATS", cfg.natsReplicas)
	}
	p := &platform{cfg: cfg, log: obs.NewLogger(stderr, level, cfg.logJSON), reg: obs.NewRegistry(), serverTLS: serverTLS, clientTLS: clientTLS}
	p.tracing, err = obs.NewTracerProvider(ctx, obs.TraceConfig{ServiceName: service, OTLPEndpoint: cfg.otlpEndpoint, Recent: 200, Log: p.log.With("component", "tracing")})
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
	if err := p.bus.EnsureStream(ctx, enats.DefaultStream, enats.DefaultSubjects(), cfg.natsReplicas); err != nil {
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
// they time the rest and count refusals), the default deadline, the callers'
// grants (policy.go), and recovery closest to the handler, so a panic
// reaches the span and the metrics as an Internal error.
func (p *platform) serverFilters() []rpc.Filter {
	return []rpc.Filter{
		rpc.Trace(p.tracing.Tracer("corebank/rpc")),
		rpc.Metrics(p.reg),
		rpc.Deadline(p.cfg.rpcTimeout),
		rpc.Policy(grants()),
		rpc.Recover(p.log),
	}
}

// ledgerNode is the ledger service with its store and outbox relay.
type ledgerNode struct {
	db         *store.DB
	ledger     *ledger.Ledger
	relay      *outboxRelay
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
	relay := p.newRelay(db, ledger.Name)
	l, err := ledger.Open(ctx, db, ledger.Config{Notify: relay.relay.Notify, Log: p.log.With("service", ledger.Name), Metrics: p.reg})
	if err != nil {
		db.Close()
		return nil, err
	}
	ledger.Register(router, l)
	relay.start()
	rctx, cancel := context.WithCancel(context.Background())
	n := &ledgerNode{db: db, ledger: l, relay: relay, expireDone: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(n.expireDone)
		expireHolds(rctx, l, p.cfg.expireEvery, p.log.With("service", ledger.Name, "job", "expire_holds"))
	}()
	return n, nil
}

// outboxRelay publishes one service's outbox to the bus.
type outboxRelay struct {
	relay  *event.Relay
	done   chan error
	cancel context.CancelFunc
}

// newRelay makes the outbox relay of service's db; the service's Notify is
// relay.Notify. start runs it.
func (p *platform) newRelay(db *store.DB, service string) *outboxRelay {
	return &outboxRelay{
		relay: &event.Relay{DB: db, Publisher: p.bus, Log: p.log.With("component", "relay", "service", service), Registerer: p.reg},
		done:  make(chan error, 1),
	}
}

func (r *outboxRelay) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		err := r.relay.Run(ctx)
		if err != nil && ctx.Err() == nil {
			// Nothing is published until the process restarts: say so now,
			// not at stop.
			r.relay.Log.Error("outbox relay stopped; events wait in the outbox", "err", err)
		}
		r.done <- err
	}()
}

// stop stops the relay after publishing what the outbox holds. Call it once
// the service has stopped writing.
func (r *outboxRelay) stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	var err error
	if ferr := r.relay.Flush(ctx); ferr != nil {
		err = fmt.Errorf("flush outbox: %w", ferr)
	}
	<-r.done
	return err
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
			if len(hs) == 0 {
				// (Fewer than asked is not the end: holds an earlier write
				// of the same batch voided or posted are not replaced.)
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
	errs := []error{n.ledger.Close(), n.relay.stop(ctx), n.db.Close()}
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
	rpcService := rpc.Chain(router.Service(), p.serverFilters()...)
	opts := []rpc.HandlerOption{rpc.ErrorLog(p.log)}
	if p.serverTLS != nil {
		// Mutual TLS: the caller is the client certificate's.
		ln = tls.NewListener(ln, p.serverTLS)
		opts = append(opts, rpc.CallerFromCertificate())
	}
	mux.Handle("POST /rpc/", rpc.NewHTTPHandler(rpcService, opts...))
	// Clearing files travel in their requests: a larger bound there only.
	mux.Handle("POST /rpc/"+clearing.Name+"/", rpc.NewHTTPHandler(rpcService, append(opts, rpc.MaxRequest(clearing.MaxRequestBytes))...))
	mux.Handle("GET /metrics", obs.MetricsHandler(p.reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	// The last spans this process finished, newest first: a trace view
	// without a tracing backend (the embedded shape's).
	mux.HandleFunc("GET /debug/traces", func(w http.ResponseWriter, r *http.Request) {
		// Under mutual TLS, for a verified client only: spans name
		// routes, callers and errors.
		if p.serverTLS != nil && !rpc.VerifiedClient(r) {
			http.Error(w, "a verified client certificate is required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"spans": p.tracing.Recent()})
	})
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
	if err != nil {
		s.srv.Close() // cut what did not finish in time
	}
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

// cardConfig is the card service's configuration: the BIN and the secret
// keys. In production the keys come from a KMS or HSM and reach the process
// through the environment (COREBANK_CARD_KEYRING and so on); only the demo
// may generate them, into a file under --data.
type cardConfig struct {
	bin     string
	keyring string // "id:hex,id:hex"; the first is current
	hashKey string // hex, at least 32 bytes
	cvk     string // "hexA:hexB", 8 bytes each
}

func (c *cardConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.bin, "card-bin", "459999", "BIN new card numbers start with (6 to 8 digits)")
	fs.StringVar(&c.keyring, "card-keyring", "", "card number encryption keys, id:hex32bytes[,id:hex...], the first is current (secret: set COREBANK_CARD_KEYRING)")
	fs.StringVar(&c.hashKey, "card-hash-key", "", "HMAC key for card number lookup, hex, at least 32 bytes (secret: set COREBANK_CARD_HASH_KEY)")
	fs.StringVar(&c.cvk, "card-cvk", "", "card verification key pair, hexA:hexB, 8 bytes each (secret: set COREBANK_CARD_CVK)")
}

// demoCardKeysFile holds the keys the demo generated, so that a restart
// still decrypts its cards. A real deployment never keeps keys on disk
// next to the data: they live in a KMS or HSM.
const demoCardKeysFile = "demo-card-keys.json"

// demoKeys fills the missing keys of c from --data/demo-card-keys.json,
// generating and writing that file (mode 0600) the first time.
func (c *cardConfig) demoKeys(dataDir string) error {
	if c.keyring != "" && c.hashKey != "" && c.cvk != "" {
		return nil
	}
	path := filepath.Join(dataDir, demoCardKeysFile)
	var file struct {
		Keyring string `json:"keyring"`
		HashKey string `json:"hash_key"`
		CVK     string `json:"cvk"`
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("demo card keys %s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		hexKey := func(n int) string {
			k := make([]byte, n)
			rand.Read(k)
			return hex.EncodeToString(k)
		}
		file.Keyring = "demo1:" + hexKey(32)
		file.HashKey = hexKey(32)
		file.CVK = hexKey(8) + ":" + hexKey(8)
		b, _ := json.MarshalIndent(file, "", "  ")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("demo card keys: %w", err)
		}
	default:
		return fmt.Errorf("demo card keys: %w", err)
	}
	if c.keyring == "" {
		c.keyring = file.Keyring
	}
	if c.hashKey == "" {
		c.hashKey = file.HashKey
	}
	if c.cvk == "" {
		c.cvk = file.CVK
	}
	return nil
}

// config returns the card.Config c describes. Errors never echo a key.
func (c *cardConfig) config() (card.Config, error) {
	cfg := card.Config{BIN: c.bin, Keyring: card.Keyring{Keys: map[string]card.Secret{}}}
	if c.keyring == "" || c.hashKey == "" || c.cvk == "" {
		return cfg, fmt.Errorf("the card service needs --card-keyring, --card-hash-key and --card-cvk (or COREBANK_CARD_KEYRING, COREBANK_CARD_HASH_KEY, COREBANK_CARD_CVK)")
	}
	for i, entry := range strings.Split(c.keyring, ",") {
		id, hexKey, ok := strings.Cut(strings.TrimSpace(entry), ":")
		k, err := card.ParseSecret(hexKey)
		if !ok || err != nil {
			return cfg, fmt.Errorf("--card-keyring: entry %d is not id:hex", i+1)
		}
		if i == 0 {
			cfg.Keyring.Current = id
		}
		cfg.Keyring.Keys[id] = k
	}
	var err error
	if cfg.HashKey, err = card.ParseSecret(c.hashKey); err != nil {
		return cfg, fmt.Errorf("--card-hash-key is not hex")
	}
	a, b, ok := strings.Cut(c.cvk, ":")
	if cfg.CVK.A, err = card.ParseSecret(a); !ok || err != nil {
		return cfg, fmt.Errorf("--card-cvk is not hexA:hexB")
	}
	if cfg.CVK.B, err = card.ParseSecret(b); err != nil {
		return cfg, fmt.Errorf("--card-cvk is not hexA:hexB")
	}
	return cfg, nil
}

// cardNode is the card service with its store and outbox relay.
type cardNode struct {
	db    *store.DB
	cards *card.Cards
	relay *outboxRelay
}

// startCard opens the card service on its store, starts its outbox relay
// and serves its methods on router.
func (p *platform) startCard(ctx context.Context, router *rpc.Router, cc cardConfig) (*cardNode, error) {
	cfg, err := cc.config()
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, card.Name)
	if err != nil {
		return nil, err
	}
	relay := p.newRelay(db, card.Name)
	cfg.Notify = relay.relay.Notify
	cards, err := card.Open(ctx, db, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	card.Register(router, cards)
	relay.start()
	return &cardNode{db: db, cards: cards, relay: relay}, nil
}

func (n *cardNode) stop(ctx context.Context) error {
	return errors.Join(n.relay.stop(ctx), n.db.Close())
}

// settlementKey is the fixed idempotency key of the card scheme's
// settlement account in currency c, so every start finds the same one.
func settlementKey(c money.Currency) string { return "settlement-" + string(c) }

// settlementAccounts opens (or finds) a settlement account per currency.
func settlementAccounts(ctx context.Context, l ledger.Service, currencies []money.Currency) (map[money.Currency]string, error) {
	out := make(map[money.Currency]string, len(currencies))
	for _, c := range currencies {
		a, err := l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: settlementKey(c), Currency: c, Owner: "bank:settlement", Rule: ledger.RuleNone})
		if err != nil {
			return nil, fmt.Errorf("settlement account %s: %w", c, err)
		}
		out[c] = a.ID
	}
	return out, nil
}

// authorizationNode is the authorization service with its store and outbox
// relay.
type authorizationNode struct {
	db    *store.DB
	auth  *authorization.Authorizer
	relay *outboxRelay
}

// startAuthorization opens the authorization service on its store, calling
// cards and l, starts its outbox relay and serves its methods on router.
func (p *platform) startAuthorization(ctx context.Context, router *rpc.Router, cards card.Service, l ledger.Service, currencies []money.Currency) (*authorizationNode, error) {
	settlement, err := settlementAccounts(ctx, l, currencies)
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, authorization.Name)
	if err != nil {
		return nil, err
	}
	relay := p.newRelay(db, authorization.Name)
	a, err := authorization.Open(ctx, db, authorization.Config{
		Card: cards, Ledger: l, Settlement: settlement, HoldTTL: time.Duration(p.cfg.holdDays) * 24 * time.Hour,
		Log: p.log.With("service", authorization.Name), Notify: relay.relay.Notify,
		// A SQLite store belongs to this one process: no other process
		// reads its records, so approvals may be answered before their
		// records are finished (one durable write fewer on the path).
		AnswerEarly: db.Dialect == store.SQLite,
		Metrics:     p.reg,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	authorization.Register(router, a)
	relay.start()
	return &authorizationNode{db: db, auth: a, relay: relay}, nil
}

// clearingNode is the clearing service with its store and outbox relay.
type clearingNode struct {
	db    *store.DB
	relay *outboxRelay
}

// startClearing opens the clearing service on its store, calling the other
// services through in-process clients, starts its outbox relay and serves
// its methods on router: files arrive over RPC (corebank clearing ingest).
func (p *platform) startClearing(ctx context.Context, router *rpc.Router, l ledger.Service, auth authorization.Service, cards card.Service, currencies []money.Currency) (*clearingNode, error) {
	settlement, err := settlementAccounts(ctx, l, currencies)
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, clearing.Name)
	if err != nil {
		return nil, err
	}
	relay := p.newRelay(db, clearing.Name)
	c, err := clearing.Open(ctx, db, clearing.Config{
		Ledger: l, Authorization: auth, Card: cards, Settlement: settlement,
		Log: p.log.With("service", clearing.Name), Notify: relay.relay.Notify,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	clearing.Register(router, c)
	relay.start()
	return &clearingNode{db: db, relay: relay}, nil
}

func (n *clearingNode) stop(ctx context.Context) error {
	return errors.Join(n.relay.stop(ctx), n.db.Close())
}

func (n *authorizationNode) stop(ctx context.Context) error {
	return errors.Join(n.auth.Close(), n.relay.stop(ctx), n.db.Close())
}

// gatewayConfig configures the ISO 8583 gateway.
type gatewayConfig struct {
	addr      string
	deadline  time.Duration
	onTimeout cardnet.TimeoutPolicy
	workers   int
	specFile  string
	spec      *cardnet.Spec // loaded from specFile by check; the default if nil
}

// specFlagHelp is --iso8583-spec's help, for the gateway and its clients.
const specFlagHelp = "the card network's ISO 8583 message spec: a JSON file in moov-io/iso8583's spec-builder format (docs/iso8583.md); empty for the default ISO 8583:1987 ASCII spec"

// loadSpecFile loads --iso8583-spec: nil for the default when name is empty.
func loadSpecFile(name string) (*cardnet.Spec, error) {
	if name == "" {
		return nil, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--iso8583-spec: %w", err)
	}
	defer f.Close()
	s, err := cardnet.LoadSpec(f)
	if err != nil {
		return nil, fmt.Errorf("--iso8583-spec %s: %w", name, err)
	}
	return s, nil
}

func (c *gatewayConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.specFile, "iso8583-spec", "", specFlagHelp)
	fs.StringVar(&c.addr, "iso8583", cardnet.DefaultAddr, "TCP address the ISO 8583 gateway listens on for the card network")
	fs.DurationVar(&c.deadline, "iso8583-deadline", cardnet.DefaultDeadline, "decision deadline of an ISO 8583 request")
	fs.TextVar(&c.onTimeout, "iso8583-on-timeout", cardnet.Decline91, "answer past the deadline: 91 (issuer unavailable) or none (let the network stand in)")
	fs.IntVar(&c.workers, "iso8583-workers", cardnet.DefaultWorkers, "requests decided at once over all ISO 8583 connections")
}

// maxDeadline bounds --iso8583-deadline: past it the network has timed the
// request out and stood in long ago (Visa Europe allows 5 s).
const maxDeadline = 10 * time.Second

// maxWorkers bounds --iso8583-workers.
const maxWorkers = 1 << 16

// check refuses values the flags' help rules out.
func (c *gatewayConfig) check() error {
	if err := checkAddr("--iso8583", c.addr); err != nil {
		return err
	}
	if c.deadline <= 0 || c.deadline > maxDeadline {
		return fmt.Errorf("--iso8583-deadline %v: want more than 0 and at most %v", c.deadline, maxDeadline)
	}
	if err := checkWorkers("--iso8583-workers", c.workers); err != nil {
		return err
	}
	var err error
	c.spec, err = loadSpecFile(c.specFile)
	return err
}

// gatewayNode is the ISO 8583 listener and its handler.
type gatewayNode struct {
	srv  *cardnet.Server
	gw   *cardnet.Gateway
	ln   net.Listener
	done chan error
}

// startGateway listens for the card network and answers it with auth's
// decisions.
func (p *platform) startGateway(gc gatewayConfig, auth authorization.Service) (*gatewayNode, error) {
	log := p.log.With("service", "cardnet")
	gw := &cardnet.Gateway{Auth: auth, Deadline: gc.deadline, OnTimeout: gc.onTimeout, Log: log, Metrics: p.reg, Tracer: p.tracing.Tracer("corebank/cardnet")}
	srv := &cardnet.Server{Handler: gw, Deadline: gc.deadline, Workers: gc.workers, Log: log, Spec: gc.spec}
	ln, err := net.Listen("tcp", gc.addr)
	if err != nil {
		return nil, fmt.Errorf("--iso8583: listen %s: %w", gc.addr, err)
	}
	n := &gatewayNode{srv: srv, gw: gw, ln: ln, done: make(chan error, 1)}
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, cardnet.ErrServerClosed) {
			err = nil
		}
		n.done <- err
	}()
	return n, nil
}

func (n *gatewayNode) addr() string { return n.ln.Addr().String() }

// stop stops reading requests, answers those in flight, then waits for
// late decisions to be reconciled: before the services it calls stop.
func (n *gatewayNode) stop(ctx context.Context) error {
	err := n.srv.Shutdown(ctx)
	if e := <-n.done; err == nil {
		err = e
	}
	return errors.Join(err, n.gw.Wait(ctx))
}

// cardDetails are a demo card's full details, for the card-network
// simulator to pay with.
type cardDetails struct {
	CardID      string `json:"card_id"`
	AccountID   string `json:"account_id"`
	CustomerID  string `json:"customer_id"`
	PAN         string `json:"pan"`
	ExpiryMonth int    `json:"expiry_month"`
	ExpiryYear  int    `json:"expiry_year"`
	CVC         string `json:"cvc"`
}

// demoCustomerID is the card service's customer id of a demo account.
func demoCustomerID(i int) string { return "cus_demo" + strconv.Itoa(i) }

// demoCards issues one card per demo customer account (accts[1:]),
// idempotently: the keys are fixed, so a restart finds the same cards.
func demoCards(ctx context.Context, cards card.Service, accts []demoAccount) ([]card.Card, error) {
	var out []card.Card
	for i, a := range accts {
		if i == 0 {
			continue // the bank's funding account
		}
		c, err := cards.Issue(ctx, card.IssueRequest{Key: "demo-card-" + strconv.Itoa(i), AccountID: a.ID, CustomerID: demoCustomerID(i), Currency: "GBP"})
		if err != nil {
			return nil, fmt.Errorf("demo cards: %w", err)
		}
		out = append(out, *c)
	}
	return out, nil
}

// demoCardDetails reveals the demo cards' full details for the simulator.
// Each reveal is audited (reason "demo simulator") like a customer's "show
// card details"; never log the result.
func demoCardDetails(ctx context.Context, cards card.Service, demo []card.Card) ([]cardDetails, error) {
	out := make([]cardDetails, 0, len(demo))
	for _, c := range demo {
		d, err := cards.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "demo simulator"})
		if err != nil {
			return nil, fmt.Errorf("demo card details: %w", err)
		}
		out = append(out, cardDetails{CardID: c.ID, AccountID: c.AccountID, CustomerID: c.CustomerID, PAN: d.PAN, ExpiryMonth: d.ExpiryMonth, ExpiryYear: d.ExpiryYear, CVC: d.CVC})
	}
	return out, nil
}

// stack is the embedded shape's services in one process: the platform, the
// ledger, card and authorization services on one RPC router, and the ISO
// 8583 gateway in front of them. demo and bench auth both run it.
type stack struct {
	p      *platform
	router *rpc.Router
	// inproc is the router behind the platform's server filters: in-process
	// callers go through the same filters as remote ones.
	inproc   rpc.Service
	ledger   *ledgerNode
	card     *cardNode
	auth     *authorizationNode
	clearing *clearingNode
	gateway  *gatewayNode
}

// startStack starts the platform and every service, with a settlement
// account per currency, and the gateway listening on gc.addr. stop undoes
// it.
func startStack(ctx context.Context, cfg config, cc cardConfig, gc gatewayConfig, currencies []money.Currency, stderr io.Writer) (*stack, error) {
	p, err := startPlatform(ctx, cfg, "corebank", stderr)
	if err != nil {
		return nil, err
	}
	s := &stack{p: p, router: rpc.NewRouter()}
	s.inproc = rpc.Chain(s.router.Service(), p.serverFilters()...)
	fail := func(err error) (*stack, error) {
		s.stop(context.Background())
		return nil, err
	}
	if s.ledger, err = p.startLedger(ctx, s.router); err != nil {
		return fail(err)
	}
	if s.card, err = p.startCard(ctx, s.router, cc); err != nil {
		return fail(err)
	}
	if s.auth, err = p.startAuthorization(ctx, s.router, &card.Client{RPC: s.from(authorization.Name)},
		&ledger.Client{RPC: s.from(authorization.Name)}, currencies); err != nil {
		return fail(err)
	}
	if s.clearing, err = p.startClearing(ctx, s.router, &ledger.Client{RPC: s.from(clearing.Name)},
		&authorization.Client{RPC: s.from(clearing.Name)}, &card.Client{RPC: s.from(clearing.Name)}, currencies); err != nil {
		return fail(err)
	}
	if s.gateway, err = p.startGateway(gc, &authorization.Client{RPC: s.from(cardnetService)}); err != nil {
		return fail(err)
	}
	return s, nil
}

// from is the in-process RPC service as caller sees it.
func (s *stack) from(caller string) rpc.Service { return s.inproc.Filter(rpc.From(caller)) }

// stopGateway stops the card network's gateway: it drains requests in
// flight and reconciles late decisions. Call it before stopServices.
func (s *stack) stopGateway(ctx context.Context) error {
	if s.gateway == nil {
		return nil
	}
	err := s.gateway.stop(ctx)
	s.gateway = nil
	return err
}

// stopServices stops the services, callers first: each stops its writes,
// flushes its outbox and closes its store.
func (s *stack) stopServices(ctx context.Context) error {
	var errs []error
	if s.clearing != nil {
		errs = append(errs, s.clearing.stop(ctx))
		s.clearing = nil
	}
	if s.auth != nil {
		errs = append(errs, s.auth.stop(ctx))
		s.auth = nil
	}
	if s.card != nil {
		errs = append(errs, s.card.stop(ctx))
		s.card = nil
	}
	if s.ledger != nil {
		errs = append(errs, s.ledger.stop(ctx))
		s.ledger = nil
	}
	return errors.Join(errs...)
}

// stop stops what is still running, the gateway first, and closes the
// platform.
func (s *stack) stop(ctx context.Context) error {
	err := errors.Join(s.stopGateway(ctx), s.stopServices(ctx))
	s.p.close(ctx)
	return err
}

// simCards are details as the card-network simulator pays with them, in
// currency cur. They hold full card numbers: keep them in memory only.
func simCards(details []cardDetails, cur money.Currency) []sim.Card {
	out := make([]sim.Card, len(details))
	for i, d := range details {
		out[i] = simCard(d, cur)
	}
	return out
}

// simCard is a card's revealed details as the simulator plays them.
func simCard(d cardDetails, cur money.Currency) sim.Card {
	return sim.Card{PAN: cardnet.PAN(d.PAN), Expiry: fmt.Sprintf("%02d%02d", d.ExpiryYear%100, d.ExpiryMonth), CVC: cardnet.CVC(d.CVC), Currency: cur}
}
