package authorization_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestAuthorize(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)

		t.Run("approves and holds the amount", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			req := e.purchase(h, 350)
			d := must(t)(e.a.Authorize(ctx, req))
			if !d.Approved || d.Reason != authorization.Approved || d.Amount != 350 || d.Outstanding != 350 || d.Requested != 350 {
				t.Fatalf("decision = %+v", d)
			}
			if len(d.AuthCode) != 6 || strings.Trim(d.AuthCode, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Errorf("auth code %q: want 6 characters [0-9A-Z]", d.AuthCode)
			}
			if d.CardID != h.Card.ID || d.AccountID != h.Account || d.HoldID == "" || d.Currency != "GBP" || !d.At.Equal(epoch) {
				t.Errorf("decision = %+v", d)
			}
			e.wantBalance(t, h.Account, 10_000, 350)
			hold, err := e.led.GetHold(ctx, d.HoldID)
			if err != nil {
				t.Fatal(err)
			}
			if hold.Amount != 350 || hold.Destination != e.settlement || !hold.ExpiresAt.Equal(epoch.Add(authorization.DefaultHoldTTL)) {
				t.Errorf("hold = %+v", hold)
			}
			got, err := e.a.ByNetworkID(ctx, req.Network)
			if err != nil || !reflect.DeepEqual(got, d) {
				t.Errorf("ByNetworkID = %+v, %v; want %+v", got, err, d)
			}
			got, err = e.a.Get(ctx, d.ID)
			if err != nil || !reflect.DeepEqual(got, d) {
				t.Errorf("Get = %+v, %v; want %+v", got, err, d)
			}
		})

		t.Run("holds the billing amount when DE6 is present", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			req := e.purchase(h, 1000)
			req.Currency, req.BillingAmount, req.BillingCurrency = "EUR", 870, "GBP"
			d := must(t)(e.a.Authorize(ctx, req))
			if !d.Approved || d.Amount != 870 || d.Currency != "GBP" {
				t.Fatalf("decision = %+v", d)
			}
			e.wantBalance(t, h.Account, 10_000, 870)
		})

		t.Run("a refund is approved without a hold", func(t *testing.T) {
			h := e.holder(0, card.Controls{})
			req := e.purchase(h, 500)
			req.Kind = authorization.KindRefund
			d := must(t)(e.a.Authorize(ctx, req))
			if !d.Approved || d.HoldID != "" || d.Amount != 500 || d.Outstanding != 0 {
				t.Fatalf("decision = %+v", d)
			}
			e.wantBalance(t, h.Account, 0, 0)
		})

		t.Run("partial approval holds what is available", func(t *testing.T) {
			h := e.holder(300, card.Controls{})
			req := e.purchase(h, 500)
			req.PartialAllowed = true
			d := must(t)(e.a.Authorize(ctx, req))
			if !d.Approved || d.Reason != authorization.PartialApproval || d.Amount != 300 || d.Requested != 500 || d.AuthCode == "" {
				t.Fatalf("decision = %+v", d)
			}
			e.wantBalance(t, h.Account, 300, 300)
			again := must(t)(e.a.Authorize(ctx, req))
			if !again.Replayed || !reflect.DeepEqual(made(again), d) {
				t.Errorf("retransmission = %+v, want %+v replayed", again, d)
			}
			e.wantBalance(t, h.Account, 300, 300)
		})

		t.Run("retransmission gets the identical decision and one hold", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 400)
			d1 := must(t)(e.a.Authorize(ctx, req))
			e.clk.Add(time.Second) // a later retransmission
			defer e.clk.Add(-time.Second)
			d2 := must(t)(e.a.Authorize(ctx, req))
			if d1.Replayed || d1.Age != 0 || !d2.Replayed || d2.Age != time.Second || !reflect.DeepEqual(d1, made(d2)) {
				t.Errorf("retransmission = %+v\nwant %+v replayed a second later", d2, d1)
			}
			e.wantBalance(t, h.Account, 1000, 400)
			// A retransmitted decline is the same decline, even once funds arrive.
			req2 := e.purchase(h, 700)
			d3 := must(t)(e.a.Authorize(ctx, req2))
			if d3.Approved || d3.Reason != authorization.InsufficientFunds {
				t.Fatalf("decision = %+v", d3)
			}
			if _, err := e.led.Transfer(ctx, ledger.TransferRequest{Key: "topup-" + h.Account, Legs: []ledger.Leg{
				{AccountID: e.fund, Amount: -1000, Currency: "GBP"}, {AccountID: h.Account, Amount: 1000, Currency: "GBP"},
			}}); err != nil {
				t.Fatal(err)
			}
			d4 := must(t)(e.a.Authorize(ctx, req2))
			if !d4.Replayed || !reflect.DeepEqual(d3, made(d4)) {
				t.Errorf("retransmitted decline = %+v, want %+v replayed", d4, d3)
			}
			e.wantBalance(t, h.Account, 2000, 400)
		})

		t.Run("concurrent retransmissions have one effect", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 100)
			var wg sync.WaitGroup
			ds := make([]*authorization.Decision, 10)
			errs := make([]error, 10)
			for i := range ds {
				wg.Go(func() { ds[i], errs[i] = e.a.Authorize(ctx, req) })
			}
			wg.Wait()
			makers := 0
			for i := range ds {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if !ds[i].Replayed {
					makers++
				}
				if !reflect.DeepEqual(made(ds[i]), made(ds[0])) {
					t.Errorf("goroutine %d got %+v, want %+v", i, ds[i], ds[0])
				}
			}
			if makers != 1 {
				t.Errorf("%d calls say they made the decision, want 1", makers)
			}
			e.wantBalance(t, h.Account, 1000, 100)
			if n := count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM authorizations WHERE card_id = '%s'`, h.Card.ID)); n != 1 {
				t.Errorf("%d records, want 1", n)
			}
		})
	})
}

func TestDeclines(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		block := func(r card.BlockReason) func(h *holder) {
			return func(h *holder) {
				if _, err := e.cards.Block(ctx, card.BlockRequest{Key: "block-" + h.Card.ID, CardID: h.Card.ID, Reason: r}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range []struct {
			name   string
			ctl    card.Controls
			setup  func(h *holder)
			edit   func(r *authorization.Request)
			reason authorization.Reason
		}{
			{name: "unknown card", edit: func(r *authorization.Request) { r.PAN = "4000000000000002" }, reason: authorization.CardNotFound},
			{name: "frozen", setup: func(h *holder) {
				if _, err := e.cards.Freeze(ctx, card.StateRequest{Key: "freeze-" + h.Card.ID, CardID: h.Card.ID}); err != nil {
					t.Fatal(err)
				}
			}, reason: authorization.CardInactive},
			{name: "blocked lost", setup: block(card.BlockLost), reason: authorization.CardBlockedLost},
			{name: "blocked stolen", setup: block(card.BlockStolen), reason: authorization.CardBlockedStolen},
			{name: "expiry mismatch", edit: func(r *authorization.Request) { r.Expiry = "3312" }, reason: authorization.ExpiryMismatch},
			{name: "bad cvc", edit: func(r *authorization.Request) {
				if r.CVC == "000" {
					r.CVC = "001"
				} else {
					r.CVC = "000"
				}
			}, reason: authorization.InvalidCVC},
			{name: "mcc blocked", ctl: card.Controls{BlockedMCCs: []string{"5814"}}, reason: authorization.NotPermitted},
			{name: "channel off", ctl: card.Controls{DisabledChannels: []card.Channel{card.ChannelContactless}}, reason: authorization.NotPermitted},
			{name: "country not allowed", ctl: card.Controls{AllowedCountries: []string{"FR"}}, reason: authorization.NotPermitted},
			{name: "over transaction limit", ctl: card.Controls{PerTransactionLimit: 100}, reason: authorization.ExceedsLimit},
			{name: "zero amount", edit: func(r *authorization.Request) { r.Amount = 0 }, reason: authorization.InvalidAmount},
			{name: "insufficient funds", edit: func(r *authorization.Request) { r.Amount = 20_000 }, reason: authorization.InsufficientFunds},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := e.holder(10_000, tc.ctl)
				if tc.setup != nil {
					tc.setup(h)
				}
				req := e.purchase(h, 500)
				if tc.edit != nil {
					tc.edit(&req)
				}
				d := must(t)(e.a.Authorize(ctx, req))
				if d.Approved || d.Reason != tc.reason || d.AuthCode != "" || d.HoldID != "" || d.Amount != 0 {
					t.Fatalf("decision = %+v, want declined %s", d, tc.reason)
				}
				e.wantBalance(t, h.Account, 10_000, 0)
				got, err := e.a.ByNetworkID(ctx, req.Network)
				if err != nil || !reflect.DeepEqual(got, d) {
					t.Errorf("recorded = %+v, %v; want %+v", got, err, d)
				}
			})
		}

		t.Run("expired card", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			e.clk.Set(time.Date(2034, 2, 1, 0, 0, 0, 0, time.UTC))
			defer e.clk.Set(epoch)
			d := must(t)(e.a.Authorize(ctx, e.purchase(h, 500)))
			if d.Approved || d.Reason != authorization.CardExpired {
				t.Fatalf("decision = %+v", d)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
		})

		t.Run("daily limit counts earlier approvals, not reversed ones", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{DailyLimit: 1000})
			first := e.purchase(h, 600)
			if d := must(t)(e.a.Authorize(ctx, first)); !d.Approved {
				t.Fatalf("first = %+v", d)
			}
			d := must(t)(e.a.Authorize(ctx, e.purchase(h, 500)))
			if d.Approved || d.Reason != authorization.ExceedsLimit || d.Detail != string(card.OverDailyLimit) {
				t.Fatalf("second = %+v, want exceeds_limit", d)
			}
			if _, err := e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: first.Network}); err != nil {
				t.Fatal(err)
			}
			if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 500))); !d.Approved {
				t.Fatalf("after the reversal = %+v, want approved", d)
			}
			// The next day starts afresh.
			if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 600))); d.Approved {
				t.Fatalf("over the day's limit = %+v", d)
			}
			e.clk.Add(24 * time.Hour)
			defer e.clk.Add(-24 * time.Hour)
			if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 600))); !d.Approved {
				t.Fatalf("next day = %+v, want approved", d)
			}
		})

		t.Run("velocity counts approvals in the window", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{VelocityCount: 2, VelocityWindow: time.Hour})
			for i := 0; i < 2; i++ {
				if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 10))); !d.Approved {
					t.Fatalf("payment %d = %+v", i, d)
				}
			}
			if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 10))); d.Reason != authorization.ExceedsFrequency {
				t.Fatalf("third = %+v, want exceeds_frequency", d)
			}
		})
	})
}

func TestReverse(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)

		t.Run("full reversal releases the hold exactly once", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 400)
			orig := must(t)(e.a.Authorize(ctx, req))
			rr := authorization.ReversalRequest{Network: e.net(), Original: req.Network}
			rev := must(t)(e.a.Reverse(ctx, rr))
			if !rev.Approved || rev.Kind != authorization.KindReversal || rev.Amount != 400 || rev.OriginalID != orig.ID {
				t.Fatalf("reversal = %+v", rev)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			hold, _ := e.led.GetHold(ctx, orig.HoldID)
			if hold.Status != ledger.HoldVoided {
				t.Errorf("hold %s, want voided", hold.Status)
			}
			again := must(t)(e.a.Reverse(ctx, rr))
			if !reflect.DeepEqual(again, rev) {
				t.Errorf("retransmitted reversal = %+v, want %+v", again, rev)
			}
			// A second, distinct reversal finds nothing left to release.
			other := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network, Advice: true}))
			if other.Amount != 0 || !strings.Contains(other.Detail, "nothing_to_release") {
				t.Errorf("second reversal = %+v", other)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			if got, _ := e.a.Get(ctx, orig.ID); got.Outstanding != 0 || !got.Approved {
				t.Errorf("original after reversal = %+v", got)
			}
			// The original, retransmitted, still gets its answer and holds nothing.
			if d := must(t)(e.a.Authorize(ctx, req)); !d.Approved || d.AuthCode != orig.AuthCode {
				t.Errorf("original retransmitted = %+v", d)
			}
			e.wantBalance(t, h.Account, 1000, 0)
		})

		t.Run("partial reversal keeps the hold at what remains", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 800)
			orig := must(t)(e.a.Authorize(ctx, req))
			rr := authorization.ReversalRequest{Network: e.net(), Original: req.Network, Amount: 300}
			rev := must(t)(e.a.Reverse(ctx, rr))
			if rev.Amount != 500 || rev.HoldID == orig.HoldID || rev.HoldID == "" {
				t.Fatalf("reversal = %+v", rev)
			}
			e.wantBalance(t, h.Account, 1000, 300)
			must(t)(e.a.Reverse(ctx, rr))
			e.wantBalance(t, h.Account, 1000, 300)
			got, _ := e.a.Get(ctx, orig.ID)
			if got.Outstanding != 300 || got.HoldID != rev.HoldID {
				t.Errorf("original = %+v", got)
			}
			// Then the rest.
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network}))
			e.wantBalance(t, h.Account, 1000, 0)
		})

		t.Run("reversal before its original", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 400)
			rev := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network}))
			if !rev.Approved || rev.Reason != authorization.OriginalNotFound {
				t.Fatalf("reversal = %+v", rev)
			}
			d := must(t)(e.a.Authorize(ctx, req))
			if d.Approved || d.Reason != authorization.AlreadyReversed {
				t.Fatalf("late original = %+v, want declined already_reversed", d)
			}
			e.wantBalance(t, h.Account, 1000, 0)
		})

		t.Run("reversal of a financial request refunds it", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 600)
			req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
			must(t)(e.a.Financial(ctx, req))
			e.wantBalance(t, h.Account, 400, 0)
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network, Amount: 100}))
			e.wantBalance(t, h.Account, 900, 0)
		})
	})
}

func TestOtherKinds(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)

		t.Run("incremental grows the hold", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			orig := must(t)(e.a.Authorize(ctx, pre))
			inc := e.incremental(h, pre.Network, 2000)
			d := must(t)(e.a.Increment(ctx, inc))
			if !d.Approved || d.HoldID != orig.HoldID || d.Amount != 2000 || d.OriginalID != orig.ID {
				t.Fatalf("incremental = %+v", d)
			}
			e.wantBalance(t, h.Account, 10_000, 7000)
			must(t)(e.a.Increment(ctx, inc))
			e.wantBalance(t, h.Account, 10_000, 7000)
			if got, _ := e.a.Get(ctx, orig.ID); got.Outstanding != 7000 {
				t.Errorf("original outstanding %d, want 7000", got.Outstanding)
			}
			// Beyond the funds: declined, the hold unchanged.
			big := e.purchase(h, 5000)
			big.Kind, big.Original = authorization.KindIncremental, &pre.Network
			if d := must(t)(e.a.Increment(ctx, big)); d.Approved || d.Reason != authorization.InsufficientFunds {
				t.Errorf("incremental over funds = %+v", d)
			}
			// Of an unknown original: declined.
			unknown := e.net()
			lost := e.purchase(h, 10)
			lost.Kind, lost.Original = authorization.KindIncremental, &unknown
			if d := must(t)(e.a.Increment(ctx, lost)); d.Approved || d.Reason != authorization.OriginalNotFound {
				t.Errorf("incremental of nothing = %+v", d)
			}
			e.wantBalance(t, h.Account, 10_000, 7000)
			// A full reversal releases the whole grown hold.
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
			e.wantBalance(t, h.Account, 10_000, 0)
		})

		t.Run("stand-in advice overdraws and is recorded as forced", func(t *testing.T) {
			h := e.holder(100, card.Controls{BlockedMCCs: []string{"5814"}})
			req := e.purchase(h, 500)
			req.Kind, req.StandIn = authorization.KindAdvice, true
			d := must(t)(e.a.Advise(ctx, req))
			if !d.Approved || !d.Forced || d.Amount != 500 || d.HoldID == "" {
				t.Fatalf("advice = %+v", d)
			}
			if b := e.balance(h.Account); b.Pending != 500 || b.Available != -400 {
				t.Errorf("balance %+v, want pending 500, available -400", b)
			}
			must(t)(e.a.Advise(ctx, req))
			e.wantBalance(t, h.Account, 100, 500)
		})

		t.Run("advice of an approval we made holds nothing more", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 300)
			orig := must(t)(e.a.Authorize(ctx, req))
			adv := e.purchase(h, 300)
			adv.Kind, adv.StandIn, adv.Original = authorization.KindAdvice, true, &req.Network
			d := must(t)(e.a.Advise(ctx, adv))
			if !d.Approved || d.HoldID != orig.HoldID || d.Forced {
				t.Fatalf("advice = %+v", d)
			}
			e.wantBalance(t, h.Account, 1000, 300)
		})

		// The gateway reverses a late approval it answered 91 to; the
		// network then stands in and sends its advice naming that original.
		// The money must be held again: the network has paid.
		t.Run("advice of an approval since reversed holds the amount again", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 300)
			must(t)(e.a.Authorize(ctx, req))
			must(t)(e.a.Reverse(ctx, gatewayReversal(req.Network)))
			e.wantBalance(t, h.Account, 1000, 0)
			adv := e.purchase(h, 300)
			adv.Kind, adv.StandIn, adv.Original = authorization.KindAdvice, true, &req.Network
			d := must(t)(e.a.Advise(ctx, adv))
			if !d.Approved || d.HoldID == "" || d.Amount != 300 {
				t.Fatalf("advice = %+v", d)
			}
			e.wantBalance(t, h.Account, 1000, 300)
		})

		t.Run("financial posts at once", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 250)
			req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
			d := must(t)(e.a.Financial(ctx, req))
			if !d.Approved || d.TransferID == "" || d.HoldID != "" || d.Amount != 250 {
				t.Fatalf("financial = %+v", d)
			}
			e.wantBalance(t, h.Account, 750, 0)
			must(t)(e.a.Financial(ctx, req))
			e.wantBalance(t, h.Account, 750, 0)
			tooMuch := e.purchase(h, 5000)
			tooMuch.Kind, tooMuch.Channel = authorization.KindFinancial, card.ChannelATM
			if d := must(t)(e.a.Financial(ctx, tooMuch)); d.Approved || d.Reason != authorization.InsufficientFunds {
				t.Errorf("financial over funds = %+v", d)
			}
			e.wantBalance(t, h.Account, 750, 0)
		})
	})
}

func TestEventsAndSecrets(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(1000, card.Controls{})
		ok := e.purchase(h, 100)
		a := must(t)(e.a.Authorize(ctx, ok))
		must(t)(e.a.Authorize(ctx, e.purchase(h, 50_000)))
		inc := e.purchase(h, 10)
		inc.Kind, inc.Original = authorization.KindIncremental, &ok.Network
		must(t)(e.a.Increment(ctx, inc))
		adv := e.purchase(h, 20)
		adv.Kind, adv.StandIn = authorization.KindAdvice, true
		must(t)(e.a.Advise(ctx, adv))
		must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: ok.Network}))
		must(t)(e.a.Authorize(ctx, ok)) // a retransmission publishes nothing

		evs := outbox(t, db)
		var topics []string
		for _, ev := range evs {
			topics = append(topics, ev.Topic)
			if strings.Contains(string(ev.Payload), h.PAN) || strings.Contains(string(ev.Payload), h.PAN[6:12]) {
				t.Errorf("%s payload holds card number digits", ev.Topic)
			}
		}
		want := []string{authorization.TopicApproved, authorization.TopicDeclined, authorization.TopicIncremented, authorization.TopicAdvised, authorization.TopicReversed}
		if !reflect.DeepEqual(topics, want) {
			t.Errorf("topics = %v, want %v", topics, want)
		}
		var first authorization.Decision
		if err := json.Unmarshal(evs[0].Payload, &first); err != nil || first.ID != a.ID || evs[0].Key != h.Card.ID {
			t.Errorf("approved event = %+v (key %s), %v", first, evs[0].Key, err)
		}
		// No stored value anywhere holds the card number or its middle digits.
		for col, vals := range storetest.Dump(t, db) {
			if !strings.HasPrefix(col, "authorizations.") {
				continue // other tables hold the clock's real times, whose digits could match
			}
			for _, v := range vals {
				if strings.Contains(v, h.PAN) || strings.Contains(v, h.PAN[6:12]) {
					t.Errorf("%s holds card number digits", col)
				}
			}
		}
		// fmt and slog see the request masked.
		if s := fmt.Sprintf("%v %+v %#v %s", ok, ok, ok, ok.PAN); strings.Contains(s, h.PAN) || strings.Contains(s, "CVC:"+h.CVC) || strings.Contains(s, "CVC:\""+h.CVC+"\"") {
			t.Errorf("formatted request shows the card number or cvc: %s", s)
		}
	})
}

func TestBadInput(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(1000, card.Controls{})
		for _, tc := range []struct {
			name string
			edit func(r *authorization.Request)
		}{
			{"no network id", func(r *authorization.Request) { r.Network = authorization.NetworkID{} }},
			{"colon in stan", func(r *authorization.Request) { r.Network.STAN = "12:34" }},
			{"overlong rrn", func(r *authorization.Request) { r.Network.RRN = strings.Repeat("1", 40) }},
			{"unknown kind", func(r *authorization.Request) { r.Kind = "gift" }},
			{"advice kind to Authorize", func(r *authorization.Request) { r.Kind = authorization.KindAdvice }},
			{"short pan", func(r *authorization.Request) { r.PAN = "4111" }},
			{"letters in pan", func(r *authorization.Request) { r.PAN = "4111x11111111111" }},
			{"bad expiry", func(r *authorization.Request) { r.Expiry = "3413" }},
			{"bad cvc", func(r *authorization.Request) { r.CVC = "12" }},
			{"negative amount", func(r *authorization.Request) { r.Amount = -1 }},
			{"unknown currency", func(r *authorization.Request) { r.Currency = "XXX" }},
			{"billing without currency", func(r *authorization.Request) { r.BillingAmount = 5 }},
			{"bad mcc", func(r *authorization.Request) { r.MCC = "58" }},
			{"no channel", func(r *authorization.Request) { r.Channel = "" }},
			{"control char in merchant", func(r *authorization.Request) { r.MerchantName = "A\x00B" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := e.purchase(h, 100)
				tc.edit(&req)
				_, err := e.a.Authorize(ctx, req)
				wantCode(t, err, errors.BadRequest)
				if strings.Contains(err.Error(), h.PAN) {
					t.Errorf("error holds the card number: %v", err)
				}
			})
		}
		inc := e.purchase(h, 100)
		inc.Kind = authorization.KindIncremental
		_, err := e.a.Increment(ctx, inc)
		wantCode(t, err, errors.BadRequest)
		n := e.net()
		_, err = e.a.Reverse(ctx, authorization.ReversalRequest{Network: n, Original: n})
		wantCode(t, err, errors.BadRequest)
		for _, rr := range []authorization.ReversalRequest{
			{Amount: 5, AmountCurrency: "JPY"},                     // no rate
			{Amount: 5, OriginalAmount: 10},                        // a rate of no currency
			{AmountCurrency: "JPY", OriginalAmount: 10},            // a full reversal has no amount to scale
			{Amount: 5, AmountCurrency: "XXX", OriginalAmount: 10}, // not a currency
			{Amount: 5, AmountCurrency: "JPY", OriginalAmount: money.MaxAmount + 1},
		} {
			rr.Network, rr.Original = e.net(), e.net()
			_, err = e.a.Reverse(ctx, rr)
			wantCode(t, err, errors.BadRequest)
		}
		_, err = e.a.Get(ctx, "nope")
		wantCode(t, err, errors.BadRequest)
		_, err = e.a.Get(ctx, "authz_0000000000000000000000000z")
		wantCode(t, err, errors.NotFound)
		_, err = e.a.ByNetworkID(ctx, e.net())
		wantCode(t, err, errors.NotFound)

		if n := count(t, db, `SELECT COUNT(*) FROM authorizations`); n != 0 {
			t.Errorf("%d records after bad input, want 0", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM outbox`); n != 0 {
			t.Errorf("%d events after bad input, want 0", n)
		}
		e.wantBalance(t, h.Account, 1000, 0)
	})
}

func TestRPC(t *testing.T) {
	db := storetest.SQLite(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	r := rpc.NewRouter()
	authorization.Register(r, e.a)
	c := &authorization.Client{RPC: r.Service()}
	h := e.holder(1000, card.Controls{})
	req := e.purchase(h, 100)
	d, err := c.Authorize(ctx, req)
	if err != nil || !d.Approved {
		t.Fatalf("Authorize over RPC = %+v, %v", d, err)
	}
	got, err := c.Get(ctx, d.ID)
	if err != nil || got.ID != d.ID || got.AuthCode != d.AuthCode {
		t.Errorf("Get = %+v, %v", got, err)
	}
	got, err = c.ByNetworkID(ctx, req.Network)
	if err != nil || got.ID != d.ID {
		t.Errorf("ByNetworkID = %+v, %v", got, err)
	}
	rev, err := c.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network})
	if err != nil || rev.Amount != 100 {
		t.Errorf("Reverse = %+v, %v", rev, err)
	}
	_, err = c.Authorize(ctx, authorization.Request{})
	wantCode(t, err, errors.BadRequest)
	e.wantBalance(t, h.Account, 1000, 0)
}

// An incremental authorization is not another payment in the velocity
// count: a card at its velocity limit can still grow the pre-authorization
// it has, while a new payment is refused 65.
func TestVelocityDoesNotRefuseAnIncrement(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{VelocityCount: 1, VelocityWindow: time.Hour})
		pre := e.purchase(h, 1000)
		pre.Kind = authorization.KindPreauth
		if d := must(t)(e.a.Authorize(ctx, pre)); !d.Approved {
			t.Fatalf("preauth = %+v", d)
		}
		inc := e.purchase(h, 200)
		inc.Kind, inc.Original = authorization.KindIncremental, &pre.Network
		if d := must(t)(e.a.Increment(ctx, inc)); !d.Approved {
			t.Fatalf("increment of an approved preauth = %s/%s, want approved", d.Reason, d.Detail)
		}
		e.wantBalance(t, h.Account, 10_000, 1200)
		if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 100))); d.Approved || d.Reason != authorization.ExceedsFrequency {
			t.Fatalf("a second payment = %v %s, want declined %s", d.Approved, d.Reason, authorization.ExceedsFrequency)
		}
		e.wantBalance(t, h.Account, 10_000, 1200)
	})
}

// Whether a reversal of an original came "since" an increment is decided by
// comparing times (reverseIncrement: reversals of the original with at >
// the increment's updated_at). A reversal that releases nothing
// (nothing_to_release) is stamped after the original without moving the
// original's updated_at: an increment decided after it with a clock
// stepped back (NTP, a restart on another host) is still timed after it,
// so the network's reversal of the increment releases it.
func TestIncrementAfterClockStepBackIsStillReversible(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(100_000, card.Controls{})
		pre := e.preauth(t, e.a, h, 1000)

		// The network's partial reversal asking 1000 to remain: nothing to
		// release, recorded at 10:00.
		e.clk.Set(epoch.Add(time.Hour))
		rev := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 1000}))
		if rev.Amount != 0 {
			t.Fatalf("reversal = %+v, want nothing released", rev)
		}

		// The clock is stepped back (to 09:30); the merchant adds 500.
		e.clk.Set(epoch.Add(30 * time.Minute))
		inc := e.incremental(h, pre.Network, 500)
		if d := must(t)(e.a.Increment(ctx, inc)); !d.Approved {
			t.Fatalf("increment = %+v", d)
		}
		e.wantBalance(t, h.Account, 100_000, 1500)

		// The network reverses the increment: 500 must be released.
		e.clk.Set(epoch.Add(40 * time.Minute))
		d := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
		if d.Amount != 500 {
			t.Errorf("reversal of the increment released %d (detail %q), want 500", d.Amount, d.Detail)
		}
		e.wantBalance(t, h.Account, 100_000, 1000)
	})
}

// A decision says whether the call made it or read it back (a
// retransmission, a declined or approved one alike): the gateway checks
// the replayed ones for a timeout's answer it may not remember. Events
// never carry it.
func TestDecisionSaysWhetherItWasReplayed(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(1000, card.Controls{})
		for _, amount := range []int64{100, 5000} { // approved, declined 51
			req := e.purchase(h, amount)
			first := must(t)(e.a.Authorize(ctx, req))
			again := must(t)(e.a.Authorize(ctx, req))
			if first.Replayed || !again.Replayed || again.ID != first.ID || again.Approved != first.Approved {
				t.Errorf("%d: first %+v, again %+v: want the same decision, made then replayed", amount, first, again)
			}
		}
		events := outbox(t, db)
		if len(events) != 2 {
			t.Fatalf("%d events, want 2", len(events))
		}
		for _, ev := range events {
			if strings.Contains(string(ev.Payload), "replayed") {
				t.Errorf("event %s carries the call's replayed: %s", ev.Topic, ev.Payload)
			}
		}
		e.wantBalance(t, h.Account, 1000, 100)
	})
}

// made is d as the call that made it saw it: Replayed and Age cleared.
func made(d *authorization.Decision) *authorization.Decision {
	c := *d
	c.Replayed, c.Age = false, 0
	return &c
}

// A partial reversal in the transaction currency (no DE6) is converted at
// the record's own rate: ¥10,000 billed £60.00, ¥2,500 left is £15.00,
// whatever the reversal's DE4 says. A record from before its transaction
// amount was kept (txn_amount 0) is converted at the rate the reversal's
// DE4 gives, as before.
func TestPartialReversalInTheTransactionCurrency(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(100_00, card.Controls{})
		for _, tc := range []struct {
			legacy   bool
			de4      int64 // the reversal's
			wantHeld int64
		}{
			{false, 10000, 15_00},
			{false, 5000, 15_00}, // a DE4 other than the original's: the record's rate stands
			{true, 10000, 15_00},
			{true, 5000, 30_00}, // legacy: the reversal's DE4 is the rate's
		} {
			req := e.purchase(h, 10000)
			req.Currency, req.BillingAmount, req.BillingCurrency = "JPY", 60_00, "GBP"
			d := must(t)(e.a.Authorize(ctx, req))
			if tc.legacy {
				if _, err := db.Write.Exec(db.Rebind(`UPDATE authorizations SET txn_amount = 0 WHERE id = ?`), d.ID); err != nil {
					t.Fatal(err)
				}
			}
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network,
				Amount: 2500, AmountCurrency: "JPY", OriginalAmount: tc.de4}))
			e.wantBalance(t, h.Account, 100_00, tc.wantHeld)
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network}))
			e.wantBalance(t, h.Account, 100_00, 0)
		}
	})
}

// An incremental grows one payment: the per-transaction limit is on the
// whole of it, not on each increment (a pre-authorization at the limit
// does not grow, 100 at a time, into one payment of 1000).
func TestIncrementRespectsPerTransactionLimit(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(100_000, card.Controls{PerTransactionLimit: 300})
		pre := e.preauth(t, e.a, h, 100)
		var codes []string
		for range 4 {
			inc := e.incremental(h, pre.Network, 100)
			d := must(t)(e.a.Increment(ctx, inc))
			codes = append(codes, string(d.Reason)+"/"+d.Detail)
		}
		want := []string{"approved/", "approved/", "exceeds_limit/over_transaction_limit", "exceeds_limit/over_transaction_limit"}
		if !slices.Equal(codes, want) {
			t.Errorf("increments of 100 on a 100 pre-authorization under a 300 limit: %v, want %v", codes, want)
		}
		if got := must(t)(e.a.ByNetworkID(ctx, pre.Network)); got.Outstanding != 300 {
			t.Errorf("the payment holds %d, want 300", got.Outstanding)
		}
	})
}

// A wrong expiry counts with wrong CVCs towards the card's CVC lock: card
// testing guesses the expiry first, then the CVC. After the card's
// maximum of them, even the right expiry and CVC are refused until the
// window passes.
func TestWrongExpiriesLockTheCVCCheck(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(100_000, card.Controls{})
		for i := range card.DefaultMaxCVCFailures {
			req := e.purchase(h, 100)
			req.Expiry = fmt.Sprintf("%02d%02d", 30+i/12, 1+i%12) // guesses, none the card's 3401
			if d := must(t)(e.a.Authorize(ctx, req)); d.Reason != authorization.ExpiryMismatch {
				t.Fatalf("guess %d (%s): %s, want expiry_mismatch", i, req.Expiry, d.Reason)
			}
		}
		if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 100))); d.Approved || d.Reason != authorization.InvalidCVC {
			t.Errorf("the right expiry and CVC after %d wrong expiries: %s, want invalid_cvc (locked)", card.DefaultMaxCVCFailures, d.Reason)
		}
		// The window passed: the right data is approved again.
		e.clk.Add(card.DefaultCVCFailureWindow + time.Second)
		if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
			t.Errorf("after the window: %s, want approved", d.Reason)
		}
	})
}
