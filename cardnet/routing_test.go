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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.gw.Wait(ctx); err != nil {
		t.Fatal(err)
	}
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
	adv := b.purchase(h, 30_00)
	adv.MTI = cardnet.MTIAuthorizationAdvice
	adv.ProcessingCode = "200000"
	adv.ResponseCode = cardnet.Approved
	adv.AuthID = "NET123"
	adv.CVC2 = ""
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
