package event

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Memory is a test double: an in-process broker for the unit tests of
// packages that publish or consume events, so they need neither a broker nor
// a network. It keeps every event in memory for the life of the value and
// survives nothing; corebank itself always runs on NATS JetStream (see
// event/nats), embedded or external.
//
// It behaves like the real broker where tests can tell: a second publish of
// an ID is dropped, each named consumer has one position shared by all its
// subscriptions, a handler's error redelivers the event (before the
// consumer's later events), and topics match "ledger.>" and "ledger.*.created"
// patterns as NATS subjects do. The zero value is ready to use.
type Memory struct {
	// RetryDelay is how long a subscription waits after its handler failed
	// before it takes the event again (0: at once).
	RetryDelay time.Duration

	mu        sync.Mutex
	log       []Event
	ids       map[string]struct{}
	consumers map[string]*memConsumer
	changed   chan struct{} // closed when log grows or an event is given back
}

type memConsumer struct {
	next  int   // index in log of the first event not yet handed out
	retry []int // handed-out events whose handler failed, oldest first
}

var (
	_ Publisher  = (*Memory)(nil)
	_ Subscriber = (*Memory)(nil)
)

// Publish stores evs, dropping any whose ID was published before, and wakes
// the subscriptions. It never fails.
func (m *Memory) Publish(ctx context.Context, evs []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[string]struct{}{}
	}
	for _, e := range evs {
		if e.ID != "" {
			if _, dup := m.ids[e.ID]; dup {
				continue
			}
			m.ids[e.ID] = struct{}{}
		}
		m.log = append(m.log, e)
	}
	m.broadcast()
	return nil
}

// Published returns every event stored so far, in publish order.
func (m *Memory) Published() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.log...)
}

// Subscribe delivers, one at a time, the events matching topics that
// consumer has not yet handled, starting from the first event ever
// published, and keeps waiting for more until ctx ends; it then returns nil.
func (m *Memory) Subscribe(ctx context.Context, consumer string, topics []string, h Handler) error {
	for {
		e, idx, wait := m.take(consumer, topics)
		if wait != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-wait:
				continue
			}
		}
		if err := h(ctx, e); err != nil {
			m.giveBack(consumer, idx)
			t := time.NewTimer(m.RetryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

// take hands out consumer's next event matching topics, or returns a channel
// closed when there may be one.
func (m *Memory) take(consumer string, topics []string) (Event, int, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.consumers == nil {
		m.consumers = map[string]*memConsumer{}
	}
	c := m.consumers[consumer]
	if c == nil {
		c = &memConsumer{}
		m.consumers[consumer] = c
	}
	if len(c.retry) > 0 {
		idx := c.retry[0]
		c.retry = c.retry[1:]
		return m.log[idx], idx, nil
	}
	for c.next < len(m.log) {
		idx := c.next
		c.next++
		if matchAny(topics, m.log[idx].Topic) {
			return m.log[idx], idx, nil
		}
	}
	if m.changed == nil {
		m.changed = make(chan struct{})
	}
	return Event{}, 0, m.changed
}

func (m *Memory) giveBack(consumer string, idx int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.consumers[consumer]
	c.retry = append(c.retry, idx)
	m.broadcast()
}

func (m *Memory) broadcast() {
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}

func matchAny(patterns []string, topic string) bool {
	for _, p := range patterns {
		if match(p, topic) {
			return true
		}
	}
	return false
}

// match reports whether topic matches the NATS-style pattern: "*" stands for
// one dot-separated token, a final ">" for one or more.
func match(pattern, topic string) bool {
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		if p == ">" && !pmore {
			return topic != ""
		}
		t, trest, tmore := strings.Cut(topic, ".")
		if p != "*" && p != t {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}
