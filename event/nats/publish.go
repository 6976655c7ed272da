package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
)

// Headers that carry an event's fields besides its topic (the subject) and
// payload (the data). The id travels as Nats-Msg-Id.
const (
	HeaderKey  = "Corebank-Key"
	HeaderTime = "Corebank-Time" // RFC 3339 with nanoseconds, UTC
)

// JetStream's atomic batch publish (ADR-50, NATS 2.12).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// maxAtomicBatch is the server's default limit on an atomic batch.
	maxAtomicBatch = 1000
	// minAtomicBatch is the fewest events worth an atomic batch. A single
	// server spends about a dozen fsyncs' time setting up and committing a
	// batch, and one fsync on each event published alone.
	minAtomicBatch = 8

	errAtomicDisabled  = 10174 // the stream does not allow atomic batches
	errAtomicDuplicate = 10201 // the batch holds an id the stream has seen
	errAtomicTooLarge  = 10199 // the server's limit is below maxAtomicBatch
)

// Publish stores evs in their stream, subject = topic, and returns nil once
// the server has acknowledged every one (on disk: see the package doc). A
// second publish of an id within DuplicateWindow is acknowledged and
// dropped.
//
// Runs of at least 8 events bound for a stream that allows atomic batches
// (EnsureStream sets it up so on NATS 2.12 and later) go in atomic batches
// of up to 1000: all of a batch is stored, with one fsync, or none of it, so
// a failed publish leaves no gap that a retry would fill out of order. A
// batch holding an id the stream already stored (a retry after a lost ack)
// is refused whole by the server; Publish then sends those events one by
// one, and the stored ones are dropped as duplicates. Fewer events, and
// streams without atomic batches, get one pipelined publish per event (one
// fsync each), where an event that failed while later ones were stored lands
// after them when retried.
//
// Errors are errors.Unavailable (no stream holds a topic, the server is
// unreachable or did not acknowledge), or ctx's error. On error some events
// may be stored; publishing all of them again is safe.
func (c *Conn) Publish(ctx context.Context, evs []event.Event) error {
	for len(evs) > 0 {
		stream, atomic, err := c.streamOf(ctx, evs[0].Topic)
		if err != nil {
			return unavailable(fmt.Errorf("publish %s: %w", evs[0].ID, err))
		}
		// The longest run of events bound for the same stream.
		n := 1
		for n < len(evs) && (!atomic || n < maxAtomicBatch) {
			s, _, err := c.streamOf(ctx, evs[n].Topic)
			if err != nil {
				return unavailable(fmt.Errorf("publish %s: %w", evs[n].ID, err))
			}
			if s != stream {
				break
			}
			n++
		}
		if atomic && n >= minAtomicBatch {
			err = c.publishAtomic(ctx, evs[:n])
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				switch apiErr.ErrorCode {
				case errAtomicDisabled, errAtomicTooLarge:
					c.streams.Delete(evs[0].Topic) // look again next time
					err = c.publishEach(ctx, evs[:n])
				case errAtomicDuplicate:
					err = c.publishEach(ctx, evs[:n])
				}
			}
		} else {
			err = c.publishEach(ctx, evs[:n])
		}
		if err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

func unavailable(err error) error {
	if errors.IsErr(err, context.Canceled) || errors.IsErr(err, context.DeadlineExceeded) {
		return err
	}
	return errors.Wrap(fmt.Errorf("nats: %w", err), errors.Unavailable, "event broker unavailable")
}

// streamInfo is what Publish needs to know about the stream of a topic.
type streamInfo struct {
	name   string
	atomic bool
}

// streamOf returns the stream that stores topic and whether it takes atomic
// batches, asking the server the first time.
func (c *Conn) streamOf(ctx context.Context, topic string) (string, bool, error) {
	if v, ok := c.streams.Load(topic); ok {
		si := v.(streamInfo)
		return si.name, si.atomic, nil
	}
	name, err := c.js.StreamNameBySubject(ctx, topic)
	if err != nil {
		return "", false, fmt.Errorf("stream for %s: %w", topic, err)
	}
	s, err := c.js.Stream(ctx, name)
	if err != nil {
		return "", false, fmt.Errorf("stream %s: %w", name, err)
	}
	si := streamInfo{name: name, atomic: s.CachedInfo().Config.AllowAtomicPublish}
	c.streams.Store(topic, si)
	return si.name, si.atomic, nil
}

// message returns the NATS message for e.
func message(e *event.Event, extra int) *natsgo.Msg {
	h := make(natsgo.Header, 3+extra)
	h[natsgo.MsgIdHdr] = []string{e.ID}
	h[HeaderKey] = []string{e.Key}
	h[HeaderTime] = []string{e.Time.UTC().Format(time.RFC3339Nano)}
	return &natsgo.Msg{Subject: e.Topic, Data: e.Payload, Header: h}
}

// publishAtomic stores evs, all bound for one stream, as one atomic batch.
// Only the commit, the last message, asks for a reply: the server checks the
// whole batch then.
func (c *Conn) publishAtomic(ctx context.Context, evs []event.Event) error {
	id := nuid.Next()
	last := len(evs) - 1
	for i := range evs {
		m := message(&evs[i], 3)
		m.Header[hdrBatchID] = []string{id}
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
		if i < last {
			if err := c.nc.PublishMsg(m); err != nil {
				return unavailable(fmt.Errorf("publish %s: %w", evs[i].ID, err))
			}
			continue
		}
		m.Header[hdrBatchCommit] = []string{"1"}
		rctx, cancel := context.WithTimeout(ctx, publishAckTimeout)
		resp, err := c.nc.RequestMsgWithContext(rctx, m)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return unavailable(fmt.Errorf("publish batch %s..%s: %w", evs[0].ID, evs[last].ID, err))
		}
		var ack struct {
			Stream string              `json:"stream"`
			Count  int                 `json:"count"`
			Error  *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return unavailable(fmt.Errorf("publish batch %s..%s: bad ack %q: %w", evs[0].ID, evs[last].ID, resp.Data, err))
		}
		if ack.Error != nil {
			return unavailable(fmt.Errorf("publish batch %s..%s: %w", evs[0].ID, evs[last].ID, ack.Error))
		}
		if ack.Count != len(evs) {
			return unavailable(fmt.Errorf("publish batch %s..%s: server stored %d of %d", evs[0].ID, evs[last].ID, ack.Count, len(evs)))
		}
	}
	return nil
}

// publishEach stores evs one message each, pipelined: all are sent, then
// all acks awaited.
func (c *Conn) publishEach(ctx context.Context, evs []event.Event) error {
	futures := make([]jetstream.PubAckFuture, len(evs))
	for i := range evs {
		f, err := c.js.PublishMsgAsync(message(&evs[i], 0))
		if err != nil {
			return unavailable(fmt.Errorf("publish %s: %w", evs[i].ID, err))
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return unavailable(fmt.Errorf("publish %s to %s: %w", evs[i].ID, evs[i].Topic, err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
