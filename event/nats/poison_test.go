package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/event"
)

// Events whose handler keeps failing wait for their redelivery, and the
// events behind them go ahead however many fail: more than a pull batch's
// worth of failures, several times over, do not stop the consumer.
func TestFailingEventsDoNotStopTheOnesBehind(t *testing.T) {
	c := embedded(t)
	ctx := context.Background()
	const failing = 600
	evs := make([]event.Event, 0, failing+1)
	for i := range failing {
		evs = append(evs, event.Event{ID: fmt.Sprintf("ledger-%d", i+1), Topic: "ledger.transfer.created", Key: "poison", Time: time.Now(), Payload: []byte(`{}`)})
	}
	evs = append(evs, event.Event{ID: "ledger-good", Topic: "ledger.transfer.created", Key: "good", Time: time.Now(), Payload: []byte(`{}`)})
	if err := c.Publish(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var good, failed atomic.Int64
	goRun(t, func(ctx context.Context) error {
		return c.Subscribe(ctx, "poisoned", []string{"ledger.>"}, func(ctx context.Context, e event.Event) error {
			if e.Key == "poison" {
				failed.Add(1)
				return fmt.Errorf("cannot handle %s", e.ID)
			}
			good.Add(1)
			return nil
		})
	})
	waitFor(t, 20*time.Second, "the event behind the failing ones", func() bool { return good.Load() == 1 })
	if n := failed.Load(); n < failing {
		t.Errorf("%d failed deliveries before the good event, want each of the %d failing events tried", n, failing)
	}
}
