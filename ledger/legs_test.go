package ledger_test

import (
	"fmt"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A transfer of more than MaxLegs legs is refused and changes nothing; one
// of exactly MaxLegs is accepted. The bound is what keeps the per-currency
// sums in validate from overflowing, and no other test reaches it.
func TestTransferLegCountIsBounded(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		l := openLedger(t, db, ledger.Config{})
		fund := mustAccount(t, l, "legs-fund", ledger.RuleNone, 0)
		var accts []string
		for i := range ledger.MaxLegs {
			accts = append(accts, mustAccount(t, l, fmt.Sprintf("legs-%d", i), ledger.RuleLimit, 0))
		}
		legs := func(n int) []ledger.Leg {
			out := []ledger.Leg{{AccountID: fund, Amount: -int64(n - 1), Currency: "GBP"}}
			for _, a := range accts[:n-1] {
				out = append(out, ledger.Leg{AccountID: a, Amount: 1, Currency: "GBP"})
			}
			return out
		}
		before := countRows(t, db)
		_, err := l.Transfer(t.Context(), ledger.TransferRequest{Key: "too-many", Legs: legs(ledger.MaxLegs + 1)})
		wantCode(t, err, errors.BadRequest, fmt.Sprintf("transfer of %d legs", ledger.MaxLegs+1))
		if after := countRows(t, db); after != before {
			t.Errorf("a refused transfer changed the tables: %+v -> %+v", before, after)
		}
		if _, err := l.Transfer(t.Context(), ledger.TransferRequest{Key: "just-enough", Legs: legs(ledger.MaxLegs)}); err != nil {
			t.Errorf("transfer of %d legs: %v", ledger.MaxLegs, err)
		}
		verify(t, db)
	})
}
