package nats

import (
	"context"
	stderrors "errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corebank/corebank/event"
)

// Conn is a connection to NATS JetStream that publishes and consumes
// corebank events. It is safe for concurrent use; one per process is enough.
type Conn struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	cfg     config
	streams sync.Map // topic -> streamInfo
}

var (
	_ event.Publisher  = (*Conn)(nil)
	_ event.Subscriber = (*Conn)(nil)
)

// Option tunes a Conn.
type Option func(*config)

type config struct {
	log      *slog.Logger
	name     string
	ackWait  time.Duration
	retryMin time.Duration
	retryMax time.Duration
	natsOpts []natsgo.Option
}

// Defaults for the options.
const (
	// DefaultAckWait is how long the broker waits for a consumer's ack
	// before delivering the event again.
	DefaultAckWait = 30 * time.Second
	// DefaultRetryMin is about the delay before an event whose handler
	// failed is delivered again; it doubles with each further failure.
	DefaultRetryMin = 500 * time.Millisecond
	// DefaultRetryMax is as long as that delay grows.
	DefaultRetryMax = time.Minute
)

// WithLogger sends the Conn's log (handler failures, connection changes) to
// l. Without it the log is discarded.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithName names the connection as the server's monitoring shows it.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithAckWait sets how long the broker waits for a handler before
// delivering its event again (DefaultAckWait if not set). Handlers should
// finish well within it.
func WithAckWait(d time.Duration) Option { return func(c *config) { c.ackWait = d } }

// WithRetryDelay sets the delay before an event whose handler failed is
// delivered again: about first after the first failure, doubling with each
// further failure up to limit (jittered between half and all of it). A zero
// first redelivers at once.
func WithRetryDelay(first, limit time.Duration) Option {
	return func(c *config) { c.retryMin, c.retryMax = first, limit }
}

// WithNATSOptions passes options to the NATS client, for credentials, TLS
// and the like on an external cluster.
func WithNATSOptions(opts ...natsgo.Option) Option {
	return func(c *config) { c.natsOpts = append(c.natsOpts, opts...) }
}

// Connect connects to the NATS server or cluster at url
// ("nats://host:4222", several separated by commas).
func Connect(url string, opts ...Option) (*Conn, error) {
	return connect(url, nil, opts)
}

// ConnectEmbedded connects to s without a socket.
func ConnectEmbedded(s *Server, opts ...Option) (*Conn, error) {
	return connect(s.ns.ClientURL(), s, opts)
}

// maxPendingPublishes bounds the publishes awaiting an ack on one Conn; past
// it a publish waits briefly and then fails (the relay retries). Several
// relays share a Conn in the embedded shape, each with a batch of hundreds.
const maxPendingPublishes = 16384

// publishAckTimeout fails a publish whose ack never comes (a lost
// connection), so the relay retries instead of hanging.
const publishAckTimeout = 10 * time.Second

func connect(url string, s *Server, opts []Option) (*Conn, error) {
	cfg := config{
		name:     "corebank",
		ackWait:  DefaultAckWait,
		retryMin: DefaultRetryMin,
		retryMax: DefaultRetryMax,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	log := cfg.log
	nopts := []natsgo.Option{
		natsgo.Name(cfg.name),
		natsgo.MaxReconnects(-1),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if s != nil {
		nopts = append(nopts, natsgo.InProcessServer(s.ns))
	}
	nopts = append(nopts, cfg.natsOpts...)
	nc, err := natsgo.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingPublishes),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	return &Conn{nc: nc, js: js, cfg: cfg}, nil
}

// Close closes the connection. Subscriptions still running end with an
// error; publishes still waiting for acks fail.
func (c *Conn) Close() {
	c.nc.Close()
}

// DefaultStream is the stream that holds corebank's events.
const DefaultStream = "CORE"

// DefaultSubjects returns the subjects of DefaultStream: every topic of
// every corebank service ("<service>.<noun>.<verb>").
func DefaultSubjects() []string {
	return []string{
		"account.>", "api.>", "authorization.>", "card.>", "cardnet.>",
		"clearing.>", "enrichment.>", "ledger.>", "notification.>", "pot.>",
		"status.>", "transaction.>",
	}
}

// DuplicateWindow is how long a stream remembers the ids it stored, and so
// drops a republished event. The relay republishes after a crash or a lost
// ack within seconds; an event republished later than this is stored twice
// and left to the consumers' idempotency.
const DuplicateWindow = 2 * time.Minute

// EnsureStream creates the stream name over subjects, stored on disk in
// replicas copies (1 if replicas < 1; an external cluster should use 3),
// with a duplicate window of DuplicateWindow. Events are kept until deleted
// by an operator: the stream is the consumers' backlog, and the SQL stores
// can rebuild it. The stream accepts atomic batches (see Publish) on servers
// that know them (2.12 and later); older servers ignore the setting.
//
// A stream that exists already keeps what an operator set: EnsureStream
// only adds the subjects it lacks, raises its replicas and duplicate window
// to these if they are lower, and allows atomic batches. It never lowers
// or removes anything, so a service starting with the defaults cannot scale
// an operator's three-replica stream down to one, or drop their limits.
func (c *Conn) EnsureStream(ctx context.Context, name string, subjects []string, replicas int) error {
	defer c.streams.Clear()
	want := jetstream.StreamConfig{
		Name:               name,
		Subjects:           subjects,
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Replicas:           max(replicas, 1),
		Duplicates:         DuplicateWindow,
		Discard:            jetstream.DiscardOld,
		AllowAtomicPublish: true,
	}
	fail := func(err error) error { return unavailable(fmt.Errorf("stream %s: %w", name, err)) }
	// Twice: a stream another process creates between our look and our
	// create is then updated.
	for try := 0; ; try++ {
		s, err := c.js.Stream(ctx, name)
		if stderrors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = c.js.CreateStream(ctx, want)
			if stderrors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && try == 0 {
				continue
			}
			if err != nil {
				return fail(err)
			}
			return nil
		}
		if err != nil {
			return fail(err)
		}
		have := s.CachedInfo().Config
		if cfg, changed := raise(have, want); changed {
			if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
				return fail(err)
			}
		}
		return nil
	}
}

// raise returns have with what want needs that have lacks: its subjects
// that overlap none of have's added, and its replicas, duplicate window
// (at most have's MaxAge) and atomic batches raised to want's if lower,
// and whether anything changed.
func raise(have, want jetstream.StreamConfig) (jetstream.StreamConfig, bool) {
	changed := false
	have.Subjects = slices.Clone(have.Subjects)
	for _, subj := range want.Subjects {
		// A subject overlapping one the stream has (the same, or an
		// operator's card.*.* for card.>) is left as they wrote it: the
		// server refuses overlapping subjects in one stream.
		if !slices.ContainsFunc(have.Subjects, func(h string) bool { return server.SubjectsCollide(h, subj) }) {
			have.Subjects, changed = append(have.Subjects, subj), true
		}
	}
	if have.Replicas < want.Replicas {
		have.Replicas, changed = want.Replicas, true
	}
	// The window cannot outlast what the stream keeps.
	window := want.Duplicates
	if have.MaxAge > 0 {
		window = min(window, have.MaxAge)
	}
	if have.Duplicates < window {
		have.Duplicates, changed = window, true
	}
	if want.AllowAtomicPublish && !have.AllowAtomicPublish {
		have.AllowAtomicPublish, changed = true, true
	}
	return have, changed
}
