package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
)

// pullBatch is how many events a subscription asks the server for at once.
// Events wait in the client for their turn, and their ack wait runs
// meanwhile: keep pullBatch times a handler's time well under it.
const pullBatch = 64

// Subscribe delivers to h, one at a time and in stream order, the events
// whose topic matches one of topics, through the durable consumer named
// consumer (created, or updated to topics, on the stream that holds
// topics[0]; all topics must be in that stream). A consumer starts at the
// stream's first event; its position survives restarts of the process and
// of the server, and processes subscribing under one name share its events.
//
// h returning nil acknowledges its event (Subscribe waits for the server to
// confirm, so an acknowledged event is not delivered again under this
// name); an error delivers it again after a delay that grows with each
// failure (WithRetryDelay), and meanwhile later events go ahead. An event
// whose handler runs past the ack wait (WithAckWait) is delivered again too.
//
// Subscribe returns nil when ctx ends, and an errors.Unavailable error if
// the consumer cannot be set up or the server ends it (the connection was
// closed, the consumer deleted).
func (c *Conn) Subscribe(ctx context.Context, consumer string, topics []string, h event.Handler) error {
	if consumer == "" || len(topics) == 0 {
		return errors.Errorf(errors.BadRequest, "nats: subscribe needs a consumer name and topics")
	}
	fail := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return errors.Wrap(fmt.Errorf("nats: consumer %s: %w", consumer, err), errors.Unavailable, "event broker unavailable")
	}
	stream, err := c.js.StreamNameBySubject(ctx, topics[0])
	if err != nil {
		return fail(fmt.Errorf("find stream for %s: %w", topics[0], err))
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       consumer,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.ackWait,
		MaxDeliver:    -1,
		// Unbounded: an event that failed waits for its redelivery as
		// pending, and a bound would let enough of them (a bug, a
		// dependency down) stop every event behind them. The pull
		// requests bound what is in flight to this process.
		MaxAckPending: -1,
	}
	if len(topics) == 1 {
		cfg.FilterSubject = topics[0] // understood by servers before 2.10 too
	} else {
		cfg.FilterSubjects = topics
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, stream, cfg)
	if err != nil {
		return fail(err)
	}
	it, err := cons.Messages(
		jetstream.PullMaxMessages(pullBatch),
		// A missed heartbeat (a slow or restarted server) is not the end:
		// the iterator asks again.
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return fail(err)
	}
	defer c.release(it)
	log := c.cfg.log.With("consumer", consumer)
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fail(err)
		}
		e := toEvent(m)
		if herr := h(ctx, e); herr != nil {
			var delay time.Duration // shutting down: another process may take it now
			if ctx.Err() == nil {
				delay = c.retryDelay(m)
				log.Warn("event handler failed; will redeliver", "event", e.ID, "topic", e.Topic, "retry_in", delay, "err", herr)
			}
			if err := m.NakWithDelay(delay); err != nil && ctx.Err() == nil {
				log.Warn("nak failed; the event returns after the ack wait", "event", e.ID, "err", err)
			}
			continue
		}
		if err := m.DoubleAck(ctx); err != nil && ctx.Err() == nil {
			// Handled but not acknowledged: it will be delivered again,
			// and the idempotent handler will see it for the second time.
			log.Warn("ack failed; the event will be redelivered", "event", e.ID, "err", err)
		}
	}
}

// retryDelay returns how long to wait before redelivering m: retryMin
// doubled for each earlier failed delivery, capped at retryMax, jittered.
// release ends a subscription without stranding events. Stopping the
// iterator alone leaves two kinds of event waiting out the ack wait (30 s by
// default) before anyone can have them: those pulled into the iterator's
// buffer but not handled, and those the server sends to the pull request
// before it learns the subscription is gone. Draining hands the first back
// at once (Nak without delay), and the flush makes the server process the
// unsubscribe before Subscribe returns, so a consumer restarted at once
// resumes at once.
func (c *Conn) release(it jetstream.MessagesContext) {
	it.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			break
		}
		m.Nak()
	}
	c.nc.FlushTimeout(2 * time.Second)
}

func (c *Conn) retryDelay(m jetstream.Msg) time.Duration {
	if c.cfg.retryMin <= 0 {
		return 0
	}
	n := uint64(1)
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 0 {
		n = meta.NumDelivered
	}
	d := c.cfg.retryMin << min(n-1, 20)
	if d <= 0 || d > c.cfg.retryMax {
		d = c.cfg.retryMax
	}
	return d/2 + rand.N(d/2+1)
}

// toEvent rebuilds the event that Publish sent as m.
func toEvent(m jetstream.Msg) event.Event {
	h := m.Headers()
	e := event.Event{
		ID:      h.Get(natsgo.MsgIdHdr),
		Topic:   m.Subject(),
		Key:     h.Get(HeaderKey),
		Payload: m.Data(),
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderTime)); err == nil {
		e.Time = t
	}
	if e.ID == "" {
		// Not published by corebank: name it by its place in the stream.
		if meta, err := m.Metadata(); err == nil {
			e.ID = fmt.Sprintf("%s-%d", meta.Stream, meta.Sequence.Stream)
		}
	}
	return e
}
