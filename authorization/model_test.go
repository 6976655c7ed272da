package authorization_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// Random sequences of the card network's messages on one card (purchases
// and pre-auths, some allowing partial approval; incrementals of any
// earlier message; full and partial reversals, the network's, advices and
// the gateway's own, of any message or of an advice's original; stand-in
// and declined advices; late originals after their advice;
// retransmissions of everything; the clock moving on and holds expiring),
// decided one at a time: after each, every record's outstanding amount is
// its ledger hold's, and the account's pending balance is their sum. With
// and without AnswerEarly. Seeds are fixed, so a failure is repeatable
// (COREBANK_MODEL_SEEDS runs more).
func TestRandomMessagesKeepRecordsAndLedgerAgreeing(t *testing.T) {
	seeds := 12
	if s := os.Getenv("COREBANK_MODEL_SEEDS"); s != "" {
		var err error
		if seeds, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, early := range []bool{false, true} {
		for seed := 1; seed <= seeds; seed++ {
			t.Run(fmt.Sprintf("early=%v/%d", early, seed), func(t *testing.T) { modelRun(t, int64(seed), early) })
		}
	}
}

func modelRun(t *testing.T, seed int64, early bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(3000, card.Controls{})
	if early {
		e.a.Close()
		e.a = e.early(t)
		t.Cleanup(func() { e.a.Close() })
	}
	var auths []authorization.Request // every non-reversal message sent
	var revs []authorization.ReversalRequest
	var log []string
	pick := func() *authorization.Request {
		if len(auths) == 0 {
			return nil
		}
		return &auths[rng.Intn(len(auths))]
	}
	check := func() {
		t.Helper()
		var sum int64
		for _, r := range auths {
			d, err := e.a.ByNetworkID(ctx, r.Network)
			if err != nil {
				continue
			}
			switch d.Kind {
			case authorization.KindPurchase, authorization.KindPreauth, authorization.KindAdvice:
			default:
				continue
			}
			if !d.Approved || d.HoldID == "" || d.Detail == "confirms_original" {
				continue
			}
			if d.Outstanding > 0 {
				hd, err := e.led.GetHold(ctx, d.HoldID)
				if err == nil && hd.Status == "expired" {
					continue
				}
				if err != nil || hd.Amount != d.Outstanding {
					t.Fatalf("seed %d: %s %s outstanding %d but its hold %+v (%v)\n%v", seed, d.Kind, d.ID, d.Outstanding, hd, err, log)
				}
			}
			sum += d.Outstanding
		}
		if p := e.balance(h.Account).Pending; p != sum {
			t.Fatalf("seed %d: ledger pending %d, records say %d\n%v", seed, p, sum, log)
		}
	}
	for step := 0; step < 40; step++ {
		var what string
		switch k := rng.Intn(10); {
		case k < 2 || len(auths) == 0:
			req := e.purchase(h, int64(1+rng.Intn(400)))
			if rng.Intn(2) == 0 {
				req.Kind, req.MCC = authorization.KindPreauth, "7011"
			}
			req.PartialAllowed = rng.Intn(3) == 0
			d, err := e.a.Authorize(ctx, req)
			what = fmt.Sprintf("%s %s %d partial=%v -> %v %v", req.Network.STAN, req.Kind, req.Amount, req.PartialAllowed, dsum(d), err)
			auths = append(auths, req)
		case k < 4:
			o := pick()
			req := e.incremental(h, o.Network, int64(1+rng.Intn(200)))
			d, err := e.a.Increment(ctx, req)
			what = fmt.Sprintf("%s incr of %s %d -> %v %v", req.Network.STAN, o.Network.STAN, req.Amount, dsum(d), err)
			auths = append(auths, req)
		case k < 6:
			var on authorization.NetworkID
			o := pick()
			on = o.Network
			if o.Original != nil && rng.Intn(2) == 0 {
				on = *o.Original
			}
			rr := authorization.ReversalRequest{Network: e.net(), Original: on}
			if rng.Intn(2) == 0 {
				rr.Amount = int64(rng.Intn(300))
			}
			switch rng.Intn(3) {
			case 0:
				rr.OwnDecision = true
			case 1:
				rr.Advice = true
			}
			d, err := e.a.Reverse(ctx, rr)
			what = fmt.Sprintf("%s rev of %s keep %d own=%v -> %v %v", rr.Network.STAN, on.STAN, rr.Amount, rr.OwnDecision, dsum(d), err)
			revs = append(revs, rr)
		case k < 8:
			var orig authorization.Request
			if o := pick(); o != nil && rng.Intn(4) != 0 {
				orig = *o
			} else {
				orig = e.purchase(h, int64(1+rng.Intn(300)))
			}
			adv := e.standInAdvice(h, orig, "")
			if rng.Intn(3) == 0 {
				adv.StandIn = false
			}
			d, err := e.a.Advise(ctx, adv)
			what = fmt.Sprintf("%s advice(standin=%v) of %s %d -> %v %v", adv.Network.STAN, adv.StandIn, orig.Network.STAN, adv.Amount, dsum(d), err)
			auths = append(auths, adv)
		case k < 9:
			// The original of an earlier advice arrives late, or a
			// retransmission of anything.
			o := pick()
			var d *authorization.Decision
			var err error
			switch o.Kind {
			case authorization.KindIncremental:
				d, err = e.a.Increment(ctx, *o)
			case authorization.KindAdvice:
				d, err = e.a.Advise(ctx, *o)
				if o.Original != nil && rng.Intn(2) == 0 {
					late := e.purchase(h, o.Amount)
					late.Network = *o.Original
					d, err = e.a.Authorize(ctx, late)
					what = "late original " + late.Network.STAN
					found := false
					for _, a := range auths {
						found = found || a.Network == late.Network
					}
					if !found {
						auths = append(auths, late)
					}
				}
			default:
				d, err = e.a.Authorize(ctx, *o)
			}
			what += fmt.Sprintf(" again %s %s -> %v %v", o.Network.STAN, o.Kind, dsum(d), err)
		case rng.Intn(3) == 0:
			e.clk.Add(time.Duration(1+rng.Intn(72)) * time.Hour)
			hs, err := e.led.ExpireHolds(ctx, e.clk.Now(), 1000)
			what = fmt.Sprintf("clock %s expired %d %v", e.clk.Now(), len(hs), err)
		default:
			if len(revs) > 0 {
				rr := revs[rng.Intn(len(revs))]
				d, err := e.a.Reverse(ctx, rr)
				what = fmt.Sprintf("rev again %s -> %v %v", rr.Network.STAN, dsum(d), err)
			}
		}
		log = append(log, what)
		check()
	}
}

func dsum(d *authorization.Decision) string {
	if d == nil {
		return "nil"
	}
	return fmt.Sprintf("{%s %v %s %s amt=%d out=%d hold=%s}", d.Kind, d.Approved, d.Reason, d.Detail, d.Amount, d.Outstanding, d.HoldID)
}
