package event

import (
	"context"
	"time"
)

// Event is a fact a service has committed.
type Event struct {
	// ID is unique across all services and stable across republishing:
	// "<service>-<outbox seq>". Brokers drop a second publish of an ID.
	ID string `json:"id"`
	// Topic is "<service>.<noun>.<verb>", for example "ledger.transfer.created".
	Topic string `json:"topic"`
	// Key is what ordering matters for, usually an account id.
	Key string `json:"key,omitempty"`
	// Time is when the change committed (the service's clock).
	Time time.Time `json:"time"`
	// Payload is the event's body, JSON.
	Payload []byte `json:"payload"`
}

// Publisher sends events to a broker. Publish returns nil only when the
// broker has durably stored every event (JetStream: a publish ack after an
// fsync), so the relay may then forget them.
type Publisher interface {
	Publish(ctx context.Context, evs []Event) error
}

// PublisherFunc adapts a function to a Publisher, for fakes in tests and for
// wrapping a real publisher.
type PublisherFunc func(ctx context.Context, evs []Event) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, evs []Event) error { return f(ctx, evs) }

// Handler processes one delivered event. Returning nil acknowledges it; an
// error asks for redelivery later. Handlers must be idempotent.
type Handler func(ctx context.Context, e Event) error

// Subscriber delivers events to durable consumers. A consumer is named; its
// position survives restarts, and each event is delivered to one of the
// processes that share the name.
type Subscriber interface {
	// Subscribe delivers events whose topic matches one of topics ("ledger.>"
	// style wildcards) to h until ctx ends.
	Subscribe(ctx context.Context, consumer string, topics []string, h Handler) error
}
