package id_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/id"
)

func TestNew(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a := id.New("trf_", t0)
	if !strings.HasPrefix(a, "trf_") || len(a) != len("trf_")+26 {
		t.Fatalf("id %q", a)
	}
	for _, r := range a[4:] {
		if !strings.ContainsRune("0123456789abcdefghjkmnpqrstvwxyz", r) {
			t.Fatalf("id %q has %q outside Crockford base 32", a, r)
		}
	}
	// Later ids sort after earlier ones, whatever their random part.
	var ids []string
	for i := range 100 {
		ids = append(ids, id.New("x_", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if !slices.IsSorted(ids) {
		t.Error("ids minted a millisecond apart do not sort by time")
	}
}

// Many goroutines minting in the same millisecond never collide.
func TestNewUnique(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := make([]string, 0, 20000)
			for range 20000 {
				local = append(local, id.New("a_", now))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range local {
				if seen[s] {
					t.Errorf("duplicate id %s", s)
					return
				}
				seen[s] = true
			}
		})
	}
	wg.Wait()
}
