package clearing_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store/storetest"
)

// Two processes without a shared Locker start one new file at once: the
// loser is told to retry (Unavailable), never Internal, and the retry
// completes the file once.
func TestSameNewFileTwoProcesses(t *testing.T) {
	ctx := context.Background()
	db := storetest.Postgres(t, "clearing")
	e := newEnv(t, db)
	settle := map[money.Currency]string{"GBP": e.settlement}
	other, err := clearing.Open(ctx, db, clearing.Config{Ledger: e.led, Authorization: e.auth, Card: e.cards, Settlement: settle, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		h := e.holder(10_000)
		d := e.authorize(h, 1000)
		req := clearing.IngestRequest{FileName: "f", Content: file(fmt.Sprintf("SAME%d", round), forAuth(fmt.Sprintf("SAME%d", round), h, d, 1000))}
		var errs [2]error
		var wg sync.WaitGroup
		for i, c := range []*clearing.Clearer{e.c, other} {
			wg.Go(func() { _, errs[i] = c.Ingest(ctx, req) })
		}
		wg.Wait()
		for i, err := range errs {
			switch code := errors.CodeOf(err); {
			case err == nil:
			case code == errors.Unavailable || code == errors.Conflict:
				if _, err := []*clearing.Clearer{e.c, other}[i].Ingest(ctx, req); err != nil {
					t.Fatalf("round %d: the retry: %v", round, err)
				}
			default:
				t.Fatalf("round %d: process %d answered %v, want success or a retryable refusal", round, i, err)
			}
		}
		e.wantBalance(t, h.Account, 9000, 0)
	}
}
