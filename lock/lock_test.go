package lock_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/lock"
)

func TestLocalExcludesPerName(t *testing.T) {
	var l lock.Local
	ctx := context.Background()
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				lease, err := l.Lock(ctx, "file-1")
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				if n > most.Load() {
					most.Store(n)
				}
				inside.Add(-1)
				lease.Release()
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders at once, want 1", most.Load())
	}
}

func TestLocalNamesAreIndependent(t *testing.T) {
	var l lock.Local
	ctx := context.Background()
	a, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	b, err := l.Lock(ctx2, "b")
	if err != nil {
		t.Fatalf("lock b while a is held: %v", err)
	}
	b.Release()
}

func TestLocalTokensIncrease(t *testing.T) {
	// A clock that stands still: tokens must still increase.
	fixed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &lock.Local{Now: func() time.Time { return fixed }}
	var last int64
	for i := range 5 {
		lease, err := l.Lock(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		if lease.Token <= last {
			t.Fatalf("lease %d token %d, not above %d", i, lease.Token, last)
		}
		last = lease.Token
		lease.Release()
	}
	if last < fixed.UnixNano() {
		t.Fatalf("token %d below the clock %d: a restarted process would issue stale tokens", last, fixed.UnixNano())
	}
}

func TestLocalWaiterGivesUpWithContext(t *testing.T) {
	var l lock.Local
	held, err := l.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "x"); err != context.DeadlineExceeded {
		t.Fatalf("Lock while held = %v, want deadline exceeded", err)
	}
	held.Release()
	held.Release() // a second release is harmless
	again, err := l.Lock(context.Background(), "x")
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	if again.Token <= held.Token {
		t.Fatalf("token %d not above %d", again.Token, held.Token)
	}
	again.Release()
}

func TestLocalWaiterGetsLockOnRelease(t *testing.T) {
	var l lock.Local
	first, err := l.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan lock.Lease)
	go func() {
		lease, err := l.Lock(context.Background(), "x")
		if err != nil {
			t.Error(err)
		}
		got <- lease
	}()
	select {
	case <-got:
		t.Fatal("second Lock returned while the first lease was held")
	case <-time.After(30 * time.Millisecond):
	}
	first.Release()
	second := <-got
	if second.Token <= first.Token {
		t.Fatalf("token %d not above %d", second.Token, first.Token)
	}
	second.Release()
}
