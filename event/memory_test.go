package event_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/event"
)

// collector is a Handler that records what it was given.
type collector struct {
	mu   sync.Mutex
	got  []string
	fail map[string]int // id -> deliveries still to fail
}

func (c *collector) handle(ctx context.Context, e event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, e.ID)
	if c.fail[e.ID] > 0 {
		c.fail[e.ID]--
		return fmt.Errorf("not yet")
	}
	return nil
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// subscribe runs m.Subscribe until the test ends.
func subscribe(t *testing.T, m *event.Memory, consumer string, topics []string, h event.Handler) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Subscribe(ctx, consumer, topics, h) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func pub(t *testing.T, p event.Publisher, topic string, ids ...string) {
	t.Helper()
	evs := make([]event.Event, len(ids))
	for i, id := range ids {
		evs[i] = event.Event{ID: id, Topic: topic, Time: t0}
	}
	if err := p.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func TestMemory(t *testing.T) {
	t.Run("drops a repeated id", func(t *testing.T) {
		var m event.Memory
		pub(t, &m, "ledger.a.b", "x-1", "x-2")
		pub(t, &m, "ledger.a.b", "x-2", "x-3")
		if got := ids(m.Published()); got != "x-1,x-2,x-3" {
			t.Fatalf("stored %s, want x-1,x-2,x-3", got)
		}
	})

	t.Run("delivers matching topics from the start, to each consumer", func(t *testing.T) {
		var m event.Memory
		pub(t, &m, "ledger.transfer.created", "l-1")
		pub(t, &m, "card.card.frozen", "c-1")
		pub(t, &m, "ledger.hold.created", "l-2")
		var all, transfers collector
		subscribe(t, &m, "all", []string{"ledger.>", "card.*.frozen"}, all.handle)
		subscribe(t, &m, "transfers", []string{"ledger.transfer.*"}, transfers.handle)
		pub(t, &m, "ledger.transfer.created", "l-3")
		pub(t, &m, "ledgerx.transfer.created", "n-1")
		waitFor(t, 5*time.Second, "deliveries", func() bool { return len(all.ids()) == 4 && len(transfers.ids()) == 2 })
		time.Sleep(20 * time.Millisecond) // nothing more arrives
		if got := fmt.Sprint(all.ids()); got != "[l-1 c-1 l-2 l-3]" {
			t.Errorf("consumer all got %s", got)
		}
		if got := fmt.Sprint(transfers.ids()); got != "[l-1 l-3]" {
			t.Errorf("consumer transfers got %s", got)
		}
	})

	t.Run("redelivers a failed event before later ones", func(t *testing.T) {
		var m event.Memory
		c := collector{fail: map[string]int{"x-2": 2}}
		subscribe(t, &m, "c", []string{">"}, c.handle)
		pub(t, &m, "a.b", "x-1", "x-2", "x-3")
		waitFor(t, 5*time.Second, "deliveries", func() bool { return len(c.ids()) == 5 })
		if got := fmt.Sprint(c.ids()); got != "[x-1 x-2 x-2 x-2 x-3]" {
			t.Errorf("deliveries %s", got)
		}
	})

	t.Run("a consumer resumes where it stopped", func(t *testing.T) {
		var m event.Memory
		var first, second collector
		stop := subscribe(t, &m, "c", []string{">"}, first.handle)
		pub(t, &m, "a.b", "x-1", "x-2")
		waitFor(t, 5*time.Second, "first deliveries", func() bool { return len(first.ids()) == 2 })
		stop()
		pub(t, &m, "a.b", "x-3")
		subscribe(t, &m, "c", []string{">"}, second.handle)
		waitFor(t, 5*time.Second, "second deliveries", func() bool { return len(second.ids()) == 1 })
		time.Sleep(20 * time.Millisecond)
		if got := fmt.Sprint(second.ids()); got != "[x-3]" {
			t.Errorf("restarted consumer got %s, want [x-3]", got)
		}
	})
}
