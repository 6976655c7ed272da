package ledger_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store/storetest"
)

// The same void or final post of a hold, sent at once through two ledgers
// sharing PostgreSQL (a retry landing on another process), is answered
// alike by both: the loser replays the winner's result, and is not told
// the hold was finished by someone else.
func TestSameHoldWriteThroughTwoLedgers(t *testing.T) {
	db := storetest.Postgres(t, "ledger")
	f := newConcFixture(t, db, ledger.Config{}, "twice-", 2, 2, 1000000)
	for _, kind := range []string{"void", "post"} {
		for round := range 40 {
			h, err := f.l.PlaceHold(f.ctx, ledger.PlaceHoldRequest{Key: fmt.Sprintf("twice-%s-%d", kind, round), AccountID: f.hot[0], Destination: f.hot[1], Currency: "GBP", Amount: 100, ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("twice-%s-%d-w", kind, round)
			var res [2]*ledger.Hold
			var errs [2]error
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					<-start
					if kind == "void" {
						res[i], errs[i] = f.ls[i].VoidHold(f.ctx, ledger.VoidHoldRequest{Key: key, HoldID: h.ID})
					} else {
						res[i], errs[i] = f.ls[i].PostHold(f.ctx, ledger.PostHoldRequest{Key: key, HoldID: h.ID, Amount: 100})
					}
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("%s round %d: ledger %d answered the same request %v", kind, round, i, err)
				}
			}
			if !reflect.DeepEqual(res[0], res[1]) {
				t.Fatalf("%s round %d: the two ledgers answered %+v and %+v", kind, round, res[0], res[1])
			}
			stored, err := f.l.GetHold(f.ctx, h.ID)
			want := map[string]ledger.HoldStatus{"void": ledger.HoldVoided, "post": ledger.HoldPosted}[kind]
			if err != nil || stored.Status != want || stored.Amount != 0 || (kind == "post" && stored.Posted != 100) {
				t.Fatalf("%s round %d: hold %+v, %v; want %s once", kind, round, stored, err, want)
			}
		}
	}
}

// Two ledgers sharing PostgreSQL open an account under one key at once:
// they lock no common row, so the loser's batch hits the key's unique
// index; it is decided again, and both callers get the one account.
func TestSameKeyOnNoCommonRowThroughTwoLedgers(t *testing.T) {
	db := storetest.Postgres(t, "ledger")
	f := newConcFixture(t, db, ledger.Config{}, "open-", 2, 1, 1000)
	for round := range 30 {
		req := ledger.CreateAccountRequest{Key: fmt.Sprintf("open-twice-%d", round), Currency: "GBP", Rule: ledger.RuleLimit}
		var got [2]*ledger.Account
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				<-start
				got[i], errs[i] = f.ls[i].CreateAccount(f.ctx, req)
			})
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v, %v; want both answered", round, errs[0], errs[1])
		}
		if got[0].ID != got[1].ID {
			t.Fatalf("round %d: two accounts %s and %s for one key", round, got[0].ID, got[1].ID)
		}
	}
}
