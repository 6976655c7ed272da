package cardnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// The gateway answered 91 past its deadline (and reversed its late
// approval); the network stood in and sends its 0120 reusing the
// original's ids (acquirer, STAN, DE7, RRN), as the gateway allows for
// reversals and advices. The stand-in must hold what the network paid.
func TestStandInAdviceReusingItsOriginalsIDsHolds(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return stall{s, 3 * deadline} }, deadline: deadline})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 0)
	adv := b.follow(req, cardnet.MTIAuthorizationAdvice)
	adv.STAN, adv.TransmissionTime = req.STAN, req.TransmissionTime
	adv.ResponseCode = cardnet.Approved
	adv.AuthID = "NET123"
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
}

// A stand-in advice of a refund (DE3 20: a credit to the card) must not
// hold the cardholder's money: a refund 0100 holds nothing.
func TestRefundAdviceHoldsNothing(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	adv := refundAdvice(b, h, cardnet.Approved)
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 0)
}

// A refund 0100 (DE3 20) that names the purchase it refunds in DE90 is a
// credit: it must not grow the purchase's hold as an incremental would.
func TestRefundNamingItsPurchaseHoldsNothing(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.Approved)
	ref := b.follow(req, cardnet.MTIAuthorizationRequest)
	ref.ProcessingCode = "200000"
	ref.Amount = 10_00
	ref.CVC2 = cardnet.CVC(h.cvc)
	b.wantCode(ref, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
}

// A request reusing the network ids of an approved one for another amount
// is not a retransmission: it must not be answered approved for an amount
// nobody holds (docs/iso8583.md: ids reused for a different request, 94).
func TestIDsReusedForAnotherAmountAre94(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(1000_00, card.Controls{})
	req := b.purchase(h, 5_00)
	b.wantCode(req, cardnet.Approved)
	other := *req
	other.Amount = 500_00
	b.wantCode(&other, cardnet.DuplicateTransmission)
	b.wantBalance(h.account, 1000_00, 5_00)
	b.wantCode(req, cardnet.Approved) // the first, retransmitted: its answer again
	b.wantBalance(h.account, 1000_00, 5_00)
}

// A card number of 8 to 11 digits passes DE2's format but names no card
// the bank issues: 14, invalid card number, not 12.
func TestShortPANIsAnInvalidCardNumber(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 1_00)
	req.PAN = "45999912345"
	b.wantCode(req, cardnet.InvalidCardNumber)
}

// As TestStandInAdviceReusingItsOriginalsIDsHolds, but the 0120 reuses
// the original's ids without DE90 (optional in an 0120): it is still a
// message of its own, acknowledged 00, and it holds; its repeat changes
// nothing.
func TestStandInAdviceReusingIDsWithoutDE90Holds(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return stall{s, 3 * deadline} }, deadline: deadline})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	adv := *req
	adv.MTI = cardnet.MTIAuthorizationAdvice
	adv.CVC2 = ""
	adv.ResponseCode = cardnet.Approved
	adv.AuthID = "NET123"
	b.wantCode(&adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00) // the network paid: held
	adv.MTI = "0121"
	b.wantCode(&adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
}

// A refund advice (DE3 20) whose DE39 says the network declined the
// refund is recorded network_declined, not an approved refund.
func TestDeclinedRefundAdviceIsRecordedDeclined(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	adv := refundAdvice(b, h, "05")
	b.wantCode(adv, cardnet.Approved)
	d, err := b.recorded(adv)
	if err != nil {
		t.Fatal(err)
	}
	if d.Approved {
		t.Errorf("a refund the network declined is recorded %+v: approved, reason %s, auth code %q", d.Kind, d.Reason, d.AuthCode)
	}
}

// The network approved a refund on our behalf (0120, DE3 20, DE39 00) on
// a card since blocked lost: the refund stands (clearing will credit it),
// recorded approved under the network's code.
func TestApprovedRefundAdviceOfABlockedCardStands(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	if _, err := b.cards.Block(context.Background(), card.BlockRequest{Key: "blk", CardID: h.card.ID, Reason: card.BlockLost}); err != nil {
		t.Fatal(err)
	}
	adv := refundAdvice(b, h, cardnet.Approved)
	b.wantCode(adv, cardnet.Approved)
	d, err := b.recorded(adv)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Approved || d.AuthCode != "NET123" {
		t.Errorf("a refund the network approved is recorded %v %s %s under %q, want approved under NET123", d.Approved, d.Reason, d.Detail, d.AuthCode)
	}
	b.wantBalance(h.account, 100_00, 0)
}

// Repeats are not other requests under reused ids: a partial approval's,
// one with its billing amount in DE6, an incremental's each hear their
// first answer, never 94.
func TestRepeatsOfEveryKindAreAnsweredAlike(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(20_00, card.Controls{})
	// partial approval, repeated
	req := b.purchase(h, 30_00)
	req.PartialApproval = true
	first := b.wantCode(req, cardnet.PartiallyApproved)
	rep := *req
	rep.MTI = "0101"
	again := b.wantCode(&rep, cardnet.PartiallyApproved)
	if first.Get(4) != again.Get(4) || first.Get(38) != again.Get(38) {
		t.Errorf("repeat answered %s/%s, first %s/%s", again.Get(4), again.Get(38), first.Get(4), first.Get(38))
	}
	// billing in DE6/DE51, repeated
	h2 := b.holder(100_00, card.Controls{})
	fx := b.purchase(h2, 10_00)
	fx.Currency, fx.BillingAmount, fx.BillingCurrency = "EUR", 9_00, "GBP"
	b.wantCode(fx, cardnet.Approved)
	fxr := *fx
	fxr.MTI = "0101"
	b.wantCode(&fxr, cardnet.Approved)
	// incremental, repeated
	inc := b.follow(fx, cardnet.MTIAuthorizationRequest)
	inc.Amount, inc.BillingAmount = 2_00, 1_80
	b.wantCode(inc, cardnet.Approved)
	incr := *inc
	incr.MTI = "0101"
	b.wantCode(&incr, cardnet.Approved)
	b.wantBalance(h2.account, 100_00, 10_80)
}

// refundAdvice is the network's 0120 of a 30.00 refund (DE3 20) on h's
// card that it decided with code (DE38 NET123 if approved).
func refundAdvice(b *bank, h *cardholder, code cardnet.ResponseCode) *cardnet.Request {
	adv := b.purchase(h, 30_00)
	adv.MTI = cardnet.MTIAuthorizationAdvice
	adv.ProcessingCode = "200000"
	adv.ResponseCode = code
	if code.Approval() {
		adv.AuthID = "NET123"
	}
	adv.CVC2 = ""
	return adv
}
