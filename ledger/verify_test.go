package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// Verify is the oracle of the property and crash tests: each kind of
// damage to the stored books is reported, by the check that names it.
// Each case damages a fresh ledger of three accounts, two transfers and
// two holds (one pending, one voided) with one statement.
func TestVerifyFindsEachViolation(t *testing.T) {
	cases := []struct {
		what   string // the check's words in Verify's error
		damage string // ? is the destination account; the holds are found by status
	}{
		{"transfer does not balance", `UPDATE entries SET posted = posted + 1 WHERE account_id = ? AND seq = 1`},
		{"account balance differs from its entries", `UPDATE accounts SET posted = posted + 1 WHERE id = ?`},
		{"account balance differs from its entries", `UPDATE entries SET seq = 0 WHERE account_id = ? AND seq = 1`}, // 0, 2: a gap
		{"entry running balance is inconsistent", `UPDATE entries SET posted_after = posted_after + 1 WHERE account_id = ? AND seq = 1`},
		{"account's last_at is not its last entry's time", `UPDATE accounts SET last_at = last_at + 1 WHERE id = ?`},
		{"account with no entries has a last entry time", `UPDATE accounts SET last_at = 5 WHERE last_seq = 0 AND id <> ?`},
		{"entry is timed before the entry before it", `UPDATE entries SET at = at + 10000000000 WHERE account_id = ? AND seq = 1`},
		{"pending balance differs from its pending holds", `UPDATE holds SET amount = amount + 1 WHERE status = 'pending' AND destination = ?`},
		{"finished hold still reserves", `UPDATE holds SET amount = 7 WHERE status = 'voided' AND destination = ?`},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			storetest.Each(t, ledger.Name, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				clk := newClock(epoch)
				l := openLedger(t, db, ledger.Config{Now: clk.Now})
				src := mustAccount(t, l, "src", ledger.RuleNone, 0)
				dst := mustAccount(t, l, "dst", ledger.RuleNone, 0)
				mustAccount(t, l, "idle", ledger.RuleNone, 0)
				clk.Advance(time.Second)
				mustTransfer(t, l, "one", src, dst, 100)
				clk.Advance(time.Second)
				mustTransfer(t, l, "two", src, dst, 50)
				for _, key := range []string{"kept", "voided"} {
					h, err := l.PlaceHold(ctx, ledger.PlaceHoldRequest{Key: key, AccountID: src, Destination: dst, Currency: "GBP", Amount: 30, ExpiresAt: epoch.Add(time.Hour)})
					if err != nil {
						t.Fatal(err)
					}
					if key == "voided" {
						if _, err := l.VoidHold(ctx, ledger.VoidHoldRequest{Key: "void", HoldID: h.ID}); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := ledger.Verify(ctx, db); err != nil {
					t.Fatalf("before the damage: %v", err)
				}
				res, err := db.Write.ExecContext(ctx, db.Rebind(c.damage), dst)
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := res.RowsAffected(); n != 1 {
					t.Fatalf("the damage changed %d rows, want 1", n)
				}
				err = ledger.Verify(ctx, db)
				if err == nil || !strings.Contains(err.Error(), c.what) {
					t.Errorf("Verify = %v, want %q", err, c.what)
				}
			})
		})
	}
}
