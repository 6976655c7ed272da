package clearing_test

import (
	"testing"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// 1000 authorized, 600 cleared (final=N), reversed to 800: the new hold
// reserves the 200 still to come. The final presentment of 300 brings the
// clearings to 900 of the 800 authorized: 12.5% over, within the 20%
// tolerance, so not suspicious.
func TestOverAuthorizedCountsWhatTheReplacedHoldsCleared(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.partlyCleared(t, h)
		e.reverse(d.Network, 800)
		second := forAuth("P2", h, d, 300)
		second.presentment = 2
		second.arn = arnFor("P1")
		rep := e.ingest(t, "p2", file("P2F", second))
		e.wantBalance(t, h.Account, 9100, 0)
		if rep.Posted != 1 || rep.SuspiciousCount != 0 {
			t.Errorf("report posted %d suspicious %+v, want 1 posted and nothing suspicious (900 cleared of 800 authorized)", rep.Posted, rep.Suspicious)
		}
	})
}
