package nats_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/event"
)

// batchOf returns n events of a 200-byte payload, the size of a ledger
// change, numbered from first.
func batchOf(first, n int) []event.Event {
	evs := make([]event.Event, n)
	payload := bytes.Repeat([]byte("x"), 200)
	for i := range evs {
		evs[i] = event.Event{
			ID:      fmt.Sprintf("ledger-%d", first+i),
			Topic:   "ledger.transfer.created",
			Key:     fmt.Sprintf("acc-%d", i%100),
			Time:    time.Now(),
			Payload: payload,
		}
	}
	return evs
}

// BenchmarkPublish measures Conn.Publish of batches of 500 on the embedded
// server (fsync on every write).
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{1, 100, 500, 1000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) { benchmarkPublish(b, size) })
	}
}

func benchmarkPublish(b *testing.B, size int) {
	c := embedded(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := c.Publish(ctx, batchOf(i, size)); err != nil {
			b.Fatal(err)
		}
		i += size
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRelay measures how fast a relay drains a SQLite outbox into the
// embedded server: each op commits 10,000 events (untimed), then Flush reads,
// publishes (atomic batches of 1000, awaiting the acks) and deletes them.
func BenchmarkRelay(b *testing.B) {
	c := embedded(b)
	db := openSQLite(b, "ledger")
	relay := &event.Relay{DB: db, Publisher: c}
	ctx := context.Background()
	evs := batchOf(0, 500)
	n := 0
	var busy time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for range 20 {
			err := db.InTx(ctx, func(tx *sql.Tx) error { return event.Append(ctx, tx, db, evs...) })
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := relay.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		busy += time.Since(start)
		n += 20 * len(evs)
	}
	b.ReportMetric(float64(n)/busy.Seconds(), "events/s")
}

// BenchmarkConsume measures one durable consumer with a handler that does
// nothing: the delivery and acknowledgement rate of a subscription.
func BenchmarkConsume(b *testing.B) {
	c := embedded(b)
	ctx := context.Background()
	const n = 5000
	for i := 0; i < n; i += 500 {
		if err := c.Publish(ctx, batchOf(i, 500)); err != nil {
			b.Fatal(err)
		}
	}
	round := 0
	for b.Loop() {
		round++
		var got atomic.Int64
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- c.Subscribe(ctx, fmt.Sprintf("bench-%d", round), []string{"ledger.>"}, func(context.Context, event.Event) error {
				if got.Add(1) == n {
					cancel()
				}
				return nil
			})
		}()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ReportMetric(float64(n*round)/b.Elapsed().Seconds(), "events/s")
}
