package cardnet_test

import (
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// The network stood in for a cross-currency purchase (¥10,000 billed
// £60.00) and sent its 0120 with DE6/DE51: £60.00 is held on the advice.
// Its partial reversal of the original comes without DE6 (optional in an
// 0400, iso8583.md), DE95 in yen: what remains is converted at the
// advice's rate (¥5,000 taken as pence would leave £50.00 held). The
// 0100 either never reached us, or reached us while the authorization
// service was away (answered 91, the gateway's own reversal queued), the
// common way to get there.
func TestStandInPartialReversalWithoutDE6IsScaled(t *testing.T) {
	for _, tc := range []struct {
		name        string
		away        bool
		remain      int64 // DE95, yen
		wantHolding int64
	}{
		{"never reached us", false, 5000, 30_00},
		{"answered 91", true, 7000, 42_00},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := bankOptions{}
			if tc.away {
				opts.wrap = func(s authorization.Service) authorization.Service { return unreachable{s} }
			}
			b := newBank(t, opts)
			h := b.holder(100_00, card.Controls{})
			req := b.purchase(h, 10000)
			req.Currency = "JPY"
			req.BillingAmount, req.BillingCurrency = 60_00, "GBP"
			if tc.away {
				b.wantCode(req, cardnet.IssuerUnavailable)
				waitLate(t, b.gw)
			}
			adv := b.follow(req, cardnet.MTIAuthorizationAdvice)
			adv.ResponseCode = cardnet.Approved
			adv.AuthID = "NET123"
			b.wantCode(adv, cardnet.Approved)
			b.wantBalance(h.account, 100_00, 60_00)

			rev := b.follow(req, cardnet.MTIReversalRequest)
			rev.BillingAmount, rev.BillingCurrency = 0, ""
			remain := tc.remain
			rev.ReplacementAmount = &remain
			b.wantCode(rev, cardnet.Approved)
			b.wantBalance(h.account, 100_00, tc.wantHolding)
		})
	}
}

// A partial approval says the approved amount in DE4 (and DE6), and DE5
// (amount, settlement) scaled likewise: echoed, it would tell the network
// to settle the full £25.00 while £10.00 is approved and held.
func TestPartialApprovalScalesTheSettlementAmount(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(10_00, card.Controls{})
	req := b.purchase(h, 25_00)
	req.PartialApproval = true
	m := MustMessage(t, req)
	m.Set(5, "000000002500") // settlement amount, as a network fills it
	m.Set(50, "826")
	resp := MustSend(t, b.client, m)
	if resp.Get(39) != string(cardnet.PartiallyApproved) {
		t.Fatalf("DE39 %s, want 10", resp.Get(39))
	}
	if resp.Get(4) != "000000001000" {
		t.Errorf("DE4 %s, want the £10.00 approved", resp.Get(4))
	}
	b.wantBalance(h.account, 10_00, 10_00)
	if v, ok := resp.Lookup(5); ok && v != "000000001000" {
		t.Errorf("DE5 (settlement amount) of the partial approval = %s: the full amount requested, while DE4 says %s was approved", v, resp.Get(4))
	}
}

// DE6/DE51 in the transaction's own currency but for another amount: a
// £1,000.00 purchase (DE4, DE49 826) whose "cardholder billing amount" is
// 1p in GBP too (DE6, DE51 826). The message is at odds with itself, like
// a zero DE6: refused, not approved past the limit and the balance with 1p
// held.
func TestBillingAmountInTheTransactionCurrencyMustMatch(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(50_00, card.Controls{PerTransactionLimit: 100_00})
	m := MustMessage(t, b.purchase(h, 1000_00))
	m.Set(6, "000000000001") // 1p
	m.Set(51, "826")         // GBP, as DE49
	resp := MustSend(t, b.client, m)
	if resp.Get(39) == string(cardnet.Approved) {
		t.Errorf("a £1,000.00 purchase with DE6 of 1p in GBP answered 00 (DE4 %s), past the limit and the balance", resp.Get(4))
	}
	b.wantBalance(h.account, 50_00, 0)
}

// The other half of the rule for DE6 = 0: DE4 = 0 (a verification) with
// a DE6 of £50.00 is refused (30), and nothing held for a transaction of
// nothing.
func TestZeroTransactionAmountWithABillingAmountHoldsNothing(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 0)
	req.Currency = "JPY"
	m := MustMessage(t, req)
	m.Set(6, "000000005000") // £50.00
	m.Set(51, "826")
	resp := MustSend(t, b.client, m)
	if resp.Get(39) != string(cardnet.FormatError) {
		t.Errorf("DE39 %s, want 30 (DE6 of £50.00 for a DE4 of nothing)", resp.Get(39))
	}
	b.wantBalance(h.account, 100_00, 0)
}

// A purchase with cash back (DE3 09) is never partially approved: the part
// approved could be less than the cash the terminal hands out. Short of
// funds, it is declined 51 and nothing is held; a plain purchase of the
// same amount is approved for what is available.
func TestPurchaseWithCashbackIsNotPartiallyApproved(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(30_00, card.Controls{})
	req := b.purchase(h, 50_00)
	req.PartialApproval = true
	req.ProcessingCode = "090000"
	req.AdditionalAmounts = []cardnet.AdditionalAmount{{AccountType: "00", AmountType: cardnet.AmountCashback, Currency: "GBP", Amount: 40_00}}
	b.wantCode(req, cardnet.NotSufficientFunds)
	b.wantBalance(h.account, 30_00, 0)

	plain := b.purchase(h, 50_00)
	plain.PartialApproval = true
	b.wantCode(plain, cardnet.PartiallyApproved)
	b.wantBalance(h.account, 30_00, 30_00)
}

// A cross-currency purchase (¥10,000 billed £60.00) partially approved for
// the £30.00 available: the 0110 says DE4 ¥5,000, DE6 £30.00. The network
// then partially reverses it, its DE4 the amount the 0110 approved (¥5,000)
// and DE95 ¥2,500 remaining: £15.00 remains held, with DE6 (scaled by
// DE6/DE4) or without it (optional in an 0400: scaled by the record's own
// rate, its billing amount over its transaction amount, not by its billing
// amount over the reversal's DE4).
func TestPartialReversalOfAPartialApproval(t *testing.T) {
	for _, withDE6 := range []bool{true, false} {
		name := "without DE6"
		if withDE6 {
			name = "with DE6"
		}
		t.Run(name, func(t *testing.T) {
			b := newBank(t, bankOptions{})
			h := b.holder(30_00, card.Controls{})
			req := b.purchase(h, 10000)
			req.Currency = "JPY"
			req.BillingAmount, req.BillingCurrency = 60_00, "GBP"
			req.PartialApproval = true
			resp := b.wantCode(req, cardnet.PartiallyApproved)
			if resp.Get(4) != "000000005000" || resp.Get(6) != "000000003000" {
				t.Fatalf("0110 DE4 %s DE6 %s", resp.Get(4), resp.Get(6))
			}
			b.wantBalance(h.account, 30_00, 30_00)

			rev := b.follow(req, cardnet.MTIReversalRequest)
			rev.Amount = 5000 // what the 0110 approved
			rev.BillingAmount, rev.BillingCurrency = 0, ""
			if withDE6 {
				rev.BillingAmount, rev.BillingCurrency = 30_00, "GBP"
			}
			remain := int64(2500)
			rev.ReplacementAmount = &remain
			b.wantCode(rev, cardnet.Approved)
			b.wantBalance(h.account, 30_00, 15_00)
		})
	}
}

// A partial reversal without DE6 of a cross-currency increment: by the
// increment's own rate.
func TestPartialReversalOfAnIncrementWithoutDE6(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 10000)
	req.Currency = "JPY"
	req.BillingAmount, req.BillingCurrency = 60_00, "GBP"
	req.POSCondition = "06"
	b.wantCode(req, cardnet.Approved)
	inc := b.follow(req, cardnet.MTIAuthorizationRequest)
	inc.Amount, inc.BillingAmount = 5000, 30_00
	b.wantCode(inc, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 90_00)

	rev := b.follow(inc, cardnet.MTIReversalRequest)
	rev.BillingAmount, rev.BillingCurrency = 0, ""
	remain := int64(2000) // ¥2,000 of the increment stays: £12.00
	rev.ReplacementAmount = &remain
	b.wantCode(rev, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 72_00)
}
