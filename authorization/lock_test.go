package authorization

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeyedMutex(t *testing.T) {
	k := keyedMutex{m: map[string]*lockEntry{}}
	unlock := k.lock("a")

	// Another name is free; the same name waits, and gives up with its context.
	k.lock("b")()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if u, err := k.lockCtx(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) || u != nil {
		t.Fatalf("lockCtx of a held name: unlock %t, error %v; want only the context's error", u != nil, err)
	}

	// Waiters get the lock one at a time, in whatever order.
	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			u, err := k.lockCtx(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			u()
		})
	}
	time.Sleep(10 * time.Millisecond)
	unlock()
	wg.Wait()
	if most != 1 {
		t.Errorf("%d held the lock at once", most)
	}
	if len(k.m) != 0 {
		t.Errorf("%d names left after every lock was released", len(k.m))
	}
}
